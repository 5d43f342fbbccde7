"""
The floor: the least a Twisted server can do to move soukets' traffic.  A
bare LineOnlyReceiver relay with no protocol logic: a line
C{CHANNEL;{"type":"subscribe"}} joins a channel; any other C{CHANNEL;...}
line is copied as it is to every other member of that channel.

    python bench/floor.py PORT
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver


class Relay(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def connectionMade(self):
        self.channels = []

    def lineReceived(self, line):
        name, _, rest = line.partition(b";")
        members = self.factory.channels.setdefault(name, [])
        if rest.startswith(b'{"type":"subscribe"'):
            members.append(self)
            self.channels.append(name)
            return
        for member in members:
            if member is not self:
                member.transport.write(line + b"\n")

    def connectionLost(self, reason=None):
        for name in self.channels:
            self.factory.channels[name].remove(self)


factory = Factory.forProtocol(Relay)
factory.channels = {}
reactor.listenTCP(int(sys.argv[1]), factory, backlog=4096, interface="127.0.0.1")
reactor.run()

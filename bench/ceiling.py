"""
The ceiling: the most this stack (Twisted on CPython) lets any server do
with soukets' traffic.  Like the floor (C{bench/floor.py}), a relay with no
protocol logic, but written as fast as Twisted allows: each read is split
into lines once (a plain C{Protocol.dataReceived}, not
C{LineOnlyReceiver}'s line-at-a-time loop), and a member's copy is sent on
its socket at once when nothing is queued for it (soukets' own
C{soukets.immediate}), instead of on the next reactor turn, on the reactor
the C{soukets} command runs on (C{soukets.reactor}).  A server that does
real work cannot beat it; how close soukets comes is the figure.

    python bench/ceiling.py PORT
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import soukets.reactor  # noqa: E402

soukets.reactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402

from soukets.immediate import writer_for  # noqa: E402


class Relay(Protocol):
    def connectionMade(self):
        self.channels = []
        self.buffer = b""
        self.write = writer_for(self.transport)

    def dataReceived(self, data):
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        channels = self.factory.channels
        for line in lines:
            name, _, rest = line.partition(b";")
            members = channels.setdefault(name, [])
            if rest.startswith(b'{"type":"subscribe"'):
                members.append(self)
                self.channels.append(name)
                continue
            out = line + b"\n"
            for member in members:
                if member is not self:
                    member.write(out)

    def connectionLost(self, reason=None):
        for name in self.channels:
            self.factory.channels[name].remove(self)


factory = Factory.forProtocol(Relay)
factory.channels = {}
reactor.listenTCP(int(sys.argv[1]), factory, backlog=4096, interface="127.0.0.1")
reactor.run()

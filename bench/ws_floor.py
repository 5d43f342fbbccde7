"""
The WebSocket floor: a bare Autobahn relay on Twisted that sends every text
message it gets to every other connection, with nothing else (no parsing,
no channels, no limits).  What it reaches is what moving WebSocket messages
costs in this stack; soukets' WebSocket fan-out is measured against it.

    python bench/ws_floor.py PORT
"""

from __future__ import annotations

import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


class Relay(WebSocketServerProtocol):
    def onOpen(self) -> None:
        self.factory.members.add(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        for member in self.factory.members:
            if member is not self:
                member.sendMessage(payload, isBinary)

    def onClose(self, wasClean: bool, code: object, reason: object) -> None:
        self.factory.members.discard(self)


def main() -> None:
    factory = WebSocketServerFactory()
    factory.protocol = Relay
    factory.members = set()
    reactor.listenTCP(int(sys.argv[1]), factory, backlog=4096, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()

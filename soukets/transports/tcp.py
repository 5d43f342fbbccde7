"""
The TCP transport: one L{SouketsProtocol} per connection, a stream of
C{CHANNEL;JSON} lines both ways, and the L{SouketsFactory} that makes them.
Everything but the socket is L{soukets.transports.connection}.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.protocol import Factory, Protocol

from soukets.immediate import writer_for
from soukets.transports.connection import Connection, Gate

KEEPALIVE_IDLE = 300
"""
Seconds of silence before TCP keepalive probes start, as Redis's
C{tcp-keepalive 300}: a probe every third of that, and the peer is declared
gone after 3 unanswered probes (about 10 minutes after it vanished).
"""
KEEPALIVE_PROBES = 3


def set_keepalive(transport: Any, idle: int = KEEPALIVE_IDLE) -> None:
    """
    Turn on TCP keepalive for C{transport}'s socket with Redis's timings,
    where the platform lets them be set.
    """
    set_flag = getattr(transport, "setTcpKeepAlive", None)
    if set_flag is None:
        return
    set_flag(True)
    handle = getattr(transport, "getHandle", lambda: None)()
    if not hasattr(handle, "setsockopt"):
        return
    for option, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", max(1, idle // KEEPALIVE_PROBES)),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        number = getattr(socket, option, None)
        if number is not None:
            handle.setsockopt(socket.IPPROTO_TCP, number, value)


def describe_peer(address: Any) -> str:
    """
    C{host:port} for an address, or what it says of itself.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)


class SouketsProtocol(Protocol):
    """
    One TCP client: bytes in to its connection, whole frames out to the
    socket.
    """

    factory: SouketsFactory
    connection: Connection | None = None
    framing = None  # lines go out as they are

    def connectionMade(self) -> None:
        # The link's write (below) is the transport's writer itself.
        self.write = writer_for(self.transport)  # type: ignore[method-assign]
        self.connection = Connection(
            self.factory.gate, "tcp", self, describe_peer(self.transport.getPeer())
        )
        self.transport.registerProducer(self.connection.guard, True)
        set_keepalive(self.transport)
        self.connection.made()

    def dataReceived(self, data: bytes) -> None:
        self.connection.received(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        # Let go of the connection (no cycle left for the collector).
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.lost()

    # Link

    def write(self, data: bytes) -> None:
        # (Replaced on connecting: see connectionMade.)
        self.transport.write(data)

    def refuse(self, frame: bytes) -> None:
        self.transport.write(frame)
        self.transport.loseConnection()

    def close(self) -> None:
        self.transport.loseConnection()

    def abort(self) -> None:
        self.transport.abortConnection()

    def pause(self) -> None:
        self.transport.pauseProducing()

    def resume(self) -> None:
        self.transport.resumeProducing()


class SouketsFactory(Factory):
    """
    Makes a L{SouketsProtocol} per TCP connection, all coming in through one
    L{Gate}.
    """

    protocol = SouketsProtocol
    noisy = False

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

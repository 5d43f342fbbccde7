"""
How the load generator says "subscribe" and "publish" to each server, and
how it recognises a delivered message in a server's byte stream without
parsing it.

Every benchmark payload is plain ASCII that ends with one marker character:
C{~} for a measured message and C{^} for a warm-up message.  Each dialect
knows what follows a payload on the wire, so a delivery is counted by
counting C{marker + suffix} in large reads.
"""

from __future__ import annotations

import abc

import attrs

MEASURED = "~"
WARMUP = "^"


@attrs.frozen
class Dialect(abc.ABC):
    """
    One server's pub/sub wire format, as the load generator needs it.
    """

    name: str
    hello: bytes  # sent first on every connection
    suffix: bytes  # what follows a payload in a delivered message
    echoes: bool = False  # a subscriber gets what it publishes itself

    @abc.abstractmethod
    def subscribe(self, channel: str) -> bytes:
        """
        The bytes that subscribe this connection to C{channel}.
        """

    @abc.abstractmethod
    def publish(self, channel: str, payload: str) -> bytes:
        """
        The bytes that publish C{payload} (plain ASCII) on C{channel}.
        """

    def marker(self, kind: str) -> bytes:
        """
        The bytes that end a delivered payload of C{kind} (L{MEASURED} or
        L{WARMUP}), and nothing else in this server's stream.
        """
        return kind.encode() + self.suffix


@attrs.frozen
class LineDialect(Dialect):
    """
    soukets, and the floor relay, which speaks enough of it.
    """

    def subscribe(self, channel: str) -> bytes:
        return f'{channel};{{"type":"subscribe"}}\n'.encode()

    def publish(self, channel: str, payload: str) -> bytes:
        return f'{channel};{{"type":"publish","data":"{payload}"}}\n'.encode()


@attrs.frozen
class RedisDialect(Dialect):
    """
    Redis pub/sub over RESP3 (C{HELLO 3}), so that one connection may both
    subscribe and publish, as in soukets.  The publisher's C{:N} replies are
    read and ignored.  Redis sends a subscriber its own messages too, so
    two members that talk have a channel each (see L{Dialect.echoes}).
    """

    def subscribe(self, channel: str) -> bytes:
        return _resp("SUBSCRIBE", channel)

    def publish(self, channel: str, payload: str) -> bytes:
        return _resp("PUBLISH", channel, payload)


def _resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n"]
    for word in words:
        parts.append(f"${len(word)}\r\n{word}\r\n")
    return "".join(parts).encode()


@attrs.frozen
class NatsDialect(Dialect):
    """
    NATS core pub/sub, non-verbose, without echo (a publisher does not get
    its own messages, as in soukets).
    """

    def subscribe(self, channel: str) -> bytes:
        return f"SUB {channel} 1\r\n".encode()

    def publish(self, channel: str, payload: str) -> bytes:
        return f"PUB {channel} {len(payload)}\r\n{payload}\r\n".encode()


# One client-side framer for every connection: a text frame's bytes depend
# only on its payload (and a masking key), not on the connection.
_FRAMER = None


def _text_frame(text: str) -> bytes:
    """
    One masked, final WebSocket text frame carrying C{text}, made by
    wsproto (the load generator sends as a client must).
    """
    global _FRAMER
    if _FRAMER is None:
        from wsproto.frame_protocol import FrameProtocol

        _FRAMER = FrameProtocol(client=True, extensions=[])
    return _FRAMER.send_data(text, fin=True)


def _handshake(path: str) -> bytes:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import Request

    return WSConnection(ConnectionType.CLIENT).send(Request(host="127.0.0.1", target=path))


@attrs.frozen
class WebSocketDialect(LineDialect):
    """
    soukets' frames, one per WebSocket text message (and the WebSocket
    floor, which relays them).  The connection opens with the upgrade
    request; the server's 101 answer has no marker in it, and the frames
    it sends are not masked, so a delivered payload is counted in the raw
    stream like any other.  (Frames of these small payloads have two-byte
    headers, neither byte of which can be the marker's C{~}.)
    """

    def subscribe(self, channel: str) -> bytes:
        return _text_frame(super().subscribe(channel).decode().rstrip("\n"))

    def publish(self, channel: str, payload: str) -> bytes:
        return _text_frame(super().publish(channel, payload).decode().rstrip("\n"))


DIALECTS = {
    "soukets": LineDialect("soukets", b"", b'"}\n'),
    "floor": LineDialect("floor", b"", b'"}\n'),
    "ceiling": LineDialect("ceiling", b"", b'"}\n'),
    "redis": RedisDialect("redis", b"HELLO 3\r\n", b"\r\n", echoes=True),
    "nats": NatsDialect(
        "nats",
        b'CONNECT {"verbose":false,"pedantic":false,"echo":false}\r\n',
        b"\r\n",
    ),
}

# Over WebSocket: soukets at /ws, the floor relay at any path.
WS_DIALECTS = {
    "soukets": WebSocketDialect("soukets-ws", _handshake("/ws"), b'"}'),
    "wsfloor": WebSocketDialect("wsfloor", _handshake("/"), b'"}'),
}

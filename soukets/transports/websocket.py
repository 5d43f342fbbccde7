"""
The WebSocket transport (RFC 6455, by Autobahn): one text message carries
one C{CHANNEL;JSON} frame each way.  Everything but the WebSocket is
L{soukets.transports.connection}; the HTTP side (the origin check, the
site) is here and in L{soukets.web}.

Autobahn enforces the hard message size limit (close code 1009), answers
and sends pings (a browser that vanished is dropped), and never buffers
unboundedly: what it has not sent sits in the TCP transport's buffer, which
the connection's slow-reader guard watches exactly as it does for TCP.
"""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import ISSLTransport

from wsproto.frame_protocol import FrameProtocol

from soukets.immediate import writer_for
from soukets.transports.connection import Connection, Gate
from soukets.transports.tcp import describe_peer

HARD_LIMIT_FACTOR = 4
"""A message over this many times C{--max-line} closes the connection (1009)."""

PING_INTERVAL = 30.0
"""Seconds between the server's pings; a peer that has not answered one by
the next is dropped."""

CLOSE_TRY_AGAIN_LATER = 1013


def normalize_origin(origin: str) -> str | None:
    """
    C{scheme://host[:port]}, lower-cased, without a default port; L{None}
    for what is not an origin.
    """
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == default:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


_SERVER_FRAMES = FrameProtocol(client=False, extensions=[])


def text_message(frame: bytes) -> bytes:
    """
    One frame (its line, ending in a newline) as the bytes of one
    unmasked, final WebSocket text message, by wsproto.  A server's frames
    are the same bytes for every receiver, so a channel's messages are
    framed once for all its WebSocket members (see
    L{Run.framed<soukets.outbox.Run.framed>}).
    """
    return bytes(_SERVER_FRAMES.send_data(frame[:-1].decode("utf-8"), fin=True))


class SouketsWebSocketProtocol(WebSocketServerProtocol):
    """
    One WebSocket client: whole text messages in to its connection, one
    message per frame out.
    """

    factory: SouketsWebSocketFactory
    connection: Connection | None = None
    framing = staticmethod(text_message)

    def onConnect(self, request: ConnectionRequest) -> None:
        origin = request.headers.get("origin")
        if origin is not None and not self.factory.origin_allowed(
            origin, request.headers.get("host", ""), self._secure()
        ):
            raise ConnectionDeny(
                ConnectionDeny.FORBIDDEN,
                "this origin may not connect; see --web-origin",
            )

    def _secure(self) -> bool:
        return ISSLTransport.providedBy(self.transport)

    def onOpen(self) -> None:
        transport = self.transport
        # The transport was taken over from twisted.web, whose channel is
        # still its producer: the slow-reader guard takes that place.
        try:
            transport.unregisterProducer()
        except RuntimeError:
            pass  # no producer (a test's transport, say)
        self._send = writer_for(transport)
        self.connection = Connection(
            self.factory.gate, "websocket", self, describe_peer(transport.getPeer())
        )
        transport.registerProducer(self.connection.guard, True)
        self.connection.made()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.connection is not None:
            self.connection.message(payload, binary=isBinary)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.lost()

    # Link

    def write(self, data: bytes) -> None:
        # Whole messages, framed already: straight to the socket, between
        # whatever Autobahn itself sends (pings, the close); nothing after
        # the closing handshake has begun.
        if self.state == self.STATE_OPEN:
            self._send(data)

    def refuse(self, frame: bytes) -> None:
        self.sendMessage(frame.rstrip(b"\n"), isBinary=False)
        # 1013 (try again later) is a registered code that Autobahn's
        # sendClose reserves for itself; its frame-level call sends it.
        self.sendCloseFrame(code=CLOSE_TRY_AGAIN_LATER, reasonUtf8=b"server full")

    def close(self) -> None:
        self.sendClose(code=1000)

    def abort(self) -> None:
        self.dropConnection(abort=True)

    def pause(self) -> None:
        self.transport.pauseProducing()

    def resume(self) -> None:
        self.transport.resumeProducing()


class SouketsWebSocketFactory(WebSocketServerFactory):
    """
    Makes a L{SouketsWebSocketProtocol} per WebSocket client, all coming in
    through one L{Gate}, with the size limits, pings and origin rule of the
    protocol.
    """

    protocol = SouketsWebSocketProtocol

    def __init__(
        self,
        gate: Gate,
        origins: Iterable[str] = (),
        ping_interval: float = PING_INTERVAL,
    ) -> None:
        super().__init__()
        self.gate = gate
        self.origins = {o for o in map(normalize_origin, origins) if o}
        hard_limit = HARD_LIMIT_FACTOR * gate.server.settings.max_line
        self.setProtocolOptions(
            maxFramePayloadSize=hard_limit,
            maxMessagePayloadSize=hard_limit,
            autoPingInterval=ping_interval,
            autoPingTimeout=ping_interval,
            openHandshakeTimeout=10,
            closeHandshakeTimeout=1,
            # A message too big gets a close frame with 1009, not a drop.
            failByDrop=False,
            # Origins, "null" included, are judged by origin_allowed (403).
            allowNullOrigin=True,
        )

    def origin_allowed(self, origin: str, host: str, secure: bool) -> bool:
        """
        Whether a browser page from C{origin} may connect: it is this site's
        own (the scheme, host and port the request was made to) or one of
        C{--web-origin}.
        """
        given = normalize_origin(origin)
        if given is None:
            return False
        own = normalize_origin(f"{'https' if secure else 'http'}://{host}")
        return given == own or given in self.origins

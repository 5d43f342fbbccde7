"""
The thin Twisted layer: a L{SouketsProtocol} per TCP connection, handing
bytes to its L{Session<soukets.session.Session>}, and the
L{SouketsFactory} that admits connections through the host's client
counter.
"""

from __future__ import annotations

import enum
import socket
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from soukets.counter import Admission, HostCounterService
from soukets.frames import CONTROL, SERVER_FULL, ProtocolError, encode_frame
from soukets.immediate import writer_for
from soukets.outbox import Outbox, Owed
from soukets.server import Server
from soukets.session import Session

DEFAULT_MAX_BUFFER = 1024 * 1024

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


class ConnectionState(enum.Enum):
    """
    Where a connection is in its life.
    """

    ADMITTING = "admitting"  # waiting for the host's client counter
    OPEN = "open"
    REFUSED = "refused"
    GONE = "gone"


class Flow(enum.Enum):
    """
    Whether the peer keeps up with what is sent to it.
    """

    FLOWING = "flowing"
    BACKED_UP = "backed up"  # the transport's buffer is full
    CUT_OFF = "cut off"


@implementer(IPushProducer)
class SlowReaderGuard:
    """
    Cuts a connection whose peer does not read: registered as the
    transport's producer, it is paused when the transport's send buffer is
    full, and counts what is written while paused; past C{limit} bytes, it
    calls C{cut_off}, once.
    """

    def __init__(self, limit: int, cut_off: Any) -> None:
        self.limit = limit
        self._cut_off = cut_off
        self.flow = Flow.FLOWING
        self._backlog = 0  # bytes written while backed up

    def wrote(self, size: int) -> None:
        if self.flow is Flow.BACKED_UP:
            self._backlog += size
            if self._backlog > self.limit:
                self.flow = Flow.CUT_OFF
                self._cut_off()

    def pauseProducing(self) -> None:
        # Twisted calls this on every write while its buffer stays full.
        if self.flow is Flow.FLOWING:
            self.flow = Flow.BACKED_UP
            self._backlog = 0

    def resumeProducing(self) -> None:
        if self.flow is Flow.BACKED_UP:
            self.flow = Flow.FLOWING

    def stopProducing(self) -> None:
        pass


class SouketsProtocol(Protocol):
    """
    One client connection: waits for admission, then feeds its session.
    """

    factory: SouketsFactory
    session: Session | None = None
    state = ConnectionState.ADMITTING
    log = Logger()

    def connectionMade(self) -> None:
        self._outbox = Outbox()
        self._send = writer_for(self.transport)
        self.factory.connections.add(self)
        self.closed: Deferred[None] = Deferred()
        self._guard = SlowReaderGuard(self.factory.max_buffer, self._cut_off)
        self.transport.registerProducer(self._guard, True)
        set_keepalive(self.transport)
        # While the counter decides, keep reading (so that a connection
        # closed meanwhile is seen, and never welcomed nor queued), holding
        # what arrives for the session; stop reading only if it piles up.
        self._early = bytearray()
        self.factory.counter.admit().addCallback(self._admitted)

    def _admitted(self, admission: Admission) -> None:
        if self.state is ConnectionState.GONE:
            if admission is Admission.ADMITTED:
                self.factory.counter.release()
            return
        if admission is not Admission.ADMITTED:
            self.state = ConnectionState.REFUSED
            if admission is Admission.FULL:
                why = (
                    f"the server is full ({self.factory.counter.max_clients} "
                    "clients on this host); try again later"
                )
            else:
                why = "the server cannot count its clients now; try again later"
            error = ProtocolError(SERVER_FULL, why)
            self.transport.write(encode_frame(CONTROL, error.to_payload()))
            self.transport.loseConnection()
            return
        self.state = ConnectionState.OPEN
        self.session = self.factory.server.connect(
            self._write,
            self._disconnect,
            self.transport.pauseProducing,
            self.transport.resumeProducing,
        )
        self.log.info(
            "client {client} connected from {peer}",
            client=self.session.client_id,
            peer=_address(self.transport.getPeer()),
        )
        self.session.start()
        early, self._early = bytes(self._early), bytearray()
        if early:
            self.session.data_received(early)
        if self.state is ConnectionState.OPEN:
            self.transport.resumeProducing()

    def _write(self, data: Owed) -> None:
        # Frames owed to this client wait in its outbox until the end of
        # the reactor turn, then go to the transport in one write.
        if not self._outbox:
            self.factory.owe(self)
        self._outbox.add(data)

    def flush(self) -> None:
        """
        Hand everything in the outbox to the transport, in one write.
        """
        if self._outbox and self.state is ConnectionState.OPEN:
            data = self._outbox.take()
            self._send(data)
            self._guard.wrote(len(data))

    def _disconnect(self) -> None:
        self.flush()
        self.transport.loseConnection()

    def _cut_off(self) -> None:
        self.log.warn(
            "client {client} cut off: it read too slowly (over {limit} bytes "
            "unsent)",
            client=self.session.client_id if self.session else "?",
            limit=self.factory.max_buffer,
        )
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.session is not None:
            self.session.data_received(data)
        elif self.state is ConnectionState.ADMITTING:
            self._early += data
            if len(self._early) > self.factory.server.settings.max_line:
                self.transport.pauseProducing()

    def connectionLost(self, reason: Any = None) -> None:
        admitted = self.state is ConnectionState.OPEN
        self.state = ConnectionState.GONE
        self._outbox.clear()
        self.factory.connections.discard(self)
        if self.session is not None:
            self.session.connection_lost()
            self.log.info("client {client} left", client=self.session.client_id)
        if admitted:
            self.factory.counter.release()
        self.closed.callback(None)


def _address(address: Any) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)


class SouketsFactory(Factory):
    """
    Makes a L{SouketsProtocol} per connection, all sharing one
    L{Server<soukets.server.Server>} and the host's client counter.
    """

    protocol = SouketsProtocol
    noisy = False

    def __init__(
        self,
        server: Server,
        counter: HostCounterService,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        self.server = server
        self.counter = counter
        self.max_buffer = max_buffer
        self.connections: set[SouketsProtocol] = set()
        self._owed: list[SouketsProtocol] = []

    def owe(self, connection: SouketsProtocol) -> None:
        """
        C{connection} has frames waiting: flush it at the end of this
        reactor turn (one write per client per turn, however many frames).
        """
        if not self._owed:
            self.server.clock.callLater(0, self.flush)
        self._owed.append(connection)

    def flush(self) -> None:
        """
        Write out every connection's waiting frames.
        """
        owed, self._owed = self._owed, []
        for connection in owed:
            connection.flush()

    def close_all(self, clock: IReactorTime, grace: float) -> Deferred[Any]:
        """
        Close every connection: politely, then after C{grace} seconds by
        aborting those still open.

        @return: a L{Deferred} that fires once all are closed.
        """
        self.flush()
        connections = list(self.connections)
        for connection in connections:
            connection.transport.loseConnection()
        if not connections:
            return succeed(None)

        def abort() -> None:
            for connection in connections:
                if connection.state is not ConnectionState.GONE:
                    connection.transport.abortConnection()

        timer = clock.callLater(grace, abort)
        done = DeferredList([c.closed for c in connections])

        def cancel_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return done.addBoth(cancel_timer)

"""
A client connection's life, whatever its transport: admitted (or refused)
by the host's client counter, then a session fed with what the client
sends, owed frames written once per reactor turn, a reader too slow to keep
up cut off, and the counter slot given back however it ends.

A transport adapter (TCP, WebSocket) owns one L{Connection} per client and
gives it a L{Link}: the few things only the transport knows how to do.
Every connection of every transport comes in through one L{Gate}.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from soukets import logs
from soukets.counter import Admission, HostCounterService
from soukets.frames import CONTROL, SERVER_FULL, ProtocolError, encode_frame
from soukets.outbox import Framing, Outbox, Owed
from soukets.server import Server
from soukets.session import Session

DEFAULT_MAX_BUFFER = 1024 * 1024


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


# The states as module names, for the hot path (see soukets.limits.ACCEPT).
ADMITTING = ConnectionState.ADMITTING
OPEN = ConnectionState.OPEN
REFUSED = ConnectionState.REFUSED
GONE = ConnectionState.GONE
FLOWING = Flow.FLOWING
BACKED_UP = Flow.BACKED_UP
CUT_OFF = Flow.CUT_OFF


@implementer(IPushProducer)
class SlowReaderGuard:
    """
    Cuts a connection whose peer does not read: registered as the
    transport's producer, it is paused when the transport's send buffer is
    full, and counts what is written while paused; past C{limit} bytes, it
    calls C{cut_off}, once.
    """

    __slots__ = ("limit", "_cut_off", "flow", "_backlog")

    def __init__(self, limit: int, cut_off: Any) -> None:
        self.limit = limit
        self._cut_off = cut_off
        self.flow = FLOWING
        self._backlog = 0  # bytes written while backed up

    def wrote(self, size: int) -> None:
        if self.flow is BACKED_UP:
            self._backlog += size
            if self._backlog > self.limit:
                self.flow = CUT_OFF
                self._cut_off()

    def pauseProducing(self) -> None:
        # Twisted calls this on every write while its buffer stays full.
        if self.flow is FLOWING:
            self.flow = BACKED_UP
            self._backlog = 0

    def resumeProducing(self) -> None:
        if self.flow is BACKED_UP:
            self.flow = FLOWING

    def stopProducing(self) -> None:
        pass


class Link(Protocol):
    """
    What a transport adapter does for its L{Connection}.
    """

    framing: Framing | None
    """How each frame is wrapped on this transport; L{None}: sent as it is."""

    def write(self, data: bytes) -> None:
        """
        Send C{data}: whole frames, as L{framing} made them.
        """

    def refuse(self, frame: bytes) -> None:
        """
        Send C{frame} (a C{server_full} error), then close.
        """

    def close(self) -> None:
        """
        Close politely, once what was written has gone.
        """

    def abort(self) -> None:
        """
        Close at once, dropping what was not sent.
        """

    def pause(self) -> None:
        """
        Stop reading from the client.
        """

    def resume(self) -> None:
        """
        Read from the client again.
        """


class Connection:
    """
    One client connection, for any transport.  The adapter calls L{made}
    once the transport is up, L{received} (a stream of bytes) or
    L{message} (one whole frame) for what the client sends, and L{lost}
    when the connection is gone.
    """

    log = Logger()
    # (Slots: a relayed message reads two connections' attributes.)
    __slots__ = ("gate", "transport", "link", "peer", "state", "session", "guard",
                 "closed", "_outbox", "_early", "_early_size")

    def __init__(self, gate: Gate, transport: str, link: Link, peer: str) -> None:
        self.gate = gate
        self.transport = transport
        self.link = link
        self.peer = peer
        self.state = ADMITTING
        self.session: Session | None = None
        self.guard = SlowReaderGuard(gate.max_buffer, self._cut_off)
        self.closed: Deferred[None] = Deferred()
        self._outbox = Outbox()
        # What arrives while the counter decides: read (so that a connection
        # closed meanwhile is seen, and never welcomed nor queued) and held
        # for the session; reading stops if it piles up.
        self._early: list[tuple[Callable[[Session, bytes], None], bytes]] = []
        self._early_size = 0

    def made(self) -> None:
        """
        The transport is up: ask the counter whether the client may stay.
        """
        self.gate.arrived(self)
        self.gate.counter.admit().addCallback(self._admitted)

    def _admitted(self, admission: Admission) -> None:
        if self.state is GONE:
            if admission is Admission.ADMITTED:
                self.gate.counter.release()
            return
        if admission is not Admission.ADMITTED:
            self.state = REFUSED
            if admission is Admission.FULL:
                why = (
                    f"the server is full ({self.gate.counter.max_clients} "
                    "clients on this host); try again later"
                )
                self.log.info(
                    "refused a {transport} client from {peer}: the host has "
                    "{total} clients, the cap is {cap}",
                    transport=self.transport,
                    peer=self.peer,
                    total=self.gate.counter.last_total,
                    cap=self.gate.counter.max_clients,
                )
            else:
                why = "the server cannot count its clients now; try again later"
            error = ProtocolError(SERVER_FULL, why)
            self.link.refuse(encode_frame(CONTROL, error.to_payload()))
            return
        self.state = OPEN
        self.session = session = self.gate.server.connect(
            self._owe, self._disconnect, self.link.pause, self.link.resume
        )
        if logs.enabled(LogLevel.debug):
            self.log.debug(
                "client {client} connected over {transport} from {peer}",
                client=session.client_id,
                transport=self.transport,
                peer=self.peer,
            )
        session.start()
        early, self._early = self._early, []
        for feed, data in early:
            feed(session, data)
        if self.state is OPEN:
            self.link.resume()

    def received(self, data: bytes) -> None:
        """
        Bytes of the client's stream of lines.
        """
        if self.session is not None:
            self.session.data_received(data)
        else:
            self._hold(Session.data_received, data)

    def message(self, data: bytes, binary: bool = False) -> None:
        """
        One whole frame, as one message (a binary one is refused).
        """
        if self.session is not None:
            self.session.message_received(data, binary)
        else:
            self._hold(
                lambda session, data: session.message_received(data, binary), data
            )

    def _hold(self, feed: Callable[[Session, bytes], None], data: bytes) -> None:
        if self.state is not ADMITTING:
            return  # refused: nothing it says matters
        self._early.append((feed, data))
        self._early_size += len(data)
        if self._early_size > self.gate.server.settings.max_line:
            self.link.pause()

    def _owe(self, data: Owed) -> None:
        # Frames owed to this client wait in its outbox until the end of
        # the reactor turn, then go to the transport in one write.
        if self._outbox.add(data):
            self.gate.owe(self)

    def flush(self) -> None:
        """
        Hand everything in the outbox to the transport, in one write.
        """
        if self.state is OPEN:
            data, frames = self._outbox.take_frames(self.link.framing)
            if frames:
                self.gate.server.tally.frames_sent += frames
                self.link.write(data)
                if self.guard.flow is not FLOWING:  # (nothing to count otherwise)
                    self.guard.wrote(len(data))

    def _disconnect(self) -> None:
        self.flush()
        self.link.close()

    def _cut_off(self) -> None:
        self.gate.server.tally.slow_readers_cut += 1
        self.log.warn(
            "client {client} cut off: it read too slowly (over {limit} bytes "
            "unsent)",
            client=self.session.client_id if self.session else "?",
            limit=self.gate.max_buffer,
        )
        self.link.abort()

    def lost(self) -> None:
        """
        The connection is gone, however it ended.
        """
        if self.state is GONE:
            return
        admitted = self.state is OPEN
        self.state = GONE
        self._outbox.clear()
        self._early = []
        self.gate.left(self)
        if self.session is not None:
            self.session.connection_lost()
            if logs.enabled(LogLevel.debug):
                self.log.debug("client {client} left", client=self.session.client_id)
        if admitted:
            self.gate.counter.release()
        self.closed.callback(None)


class Gate:
    """
    Where the connections of every transport come in: they share one
    server, one host counter and one slow-reader limit; what each is owed
    is written once per reactor turn; and at shutdown they are all closed.
    """

    log = Logger()

    def __init__(
        self,
        server: Server,
        counter: HostCounterService,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        self.server = server
        self.counter = counter
        self.max_buffer = max_buffer
        self.connections: set[Connection] = set()
        self._owed: list[Connection] = []

    def arrived(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.server.tally.connected(connection.transport)

    def left(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def owe(self, connection: Connection) -> None:
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
            try:
                connection.flush()
            except Exception:
                # One connection's failure must not leave the others
                # unwritten (they would wait for a flush that never comes).
                self.log.failure("writing to {peer} failed", peer=connection.peer)
                connection.link.abort()

    def close_all(self, clock: IReactorTime, grace: float) -> Deferred[Any]:
        """
        Close every connection: politely, then after C{grace} seconds by
        aborting those still open.

        @return: a L{Deferred} that fires once all are closed.
        """
        self.flush()
        connections = list(self.connections)
        for connection in connections:
            connection.link.close()
        if not connections:
            return succeed(None)

        def abort() -> None:
            for connection in connections:
                if connection.state is not GONE:
                    connection.link.abort()

        timer = clock.callLater(grace, abort)
        done = DeferredList([c.closed for c in connections])

        def cancel_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return done.addBoth(cancel_timer)

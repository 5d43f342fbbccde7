"""
One client's session with the server, with no I/O: bytes in, frames
dispatched to the hub and the lobbies, bytes out.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from typing import Any, Callable, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from soukets import limits
from soukets.frames import (
    BAD_FRAME,
    BAD_JSON,
    EXAMPLE,
    BinaryMessage,
    CONTROL,
    INTERNAL_ERROR,
    LINE_TOO_LONG,
    RATE_LIMITED,
    UNKNOWN_TYPE,
    Frame,
    LineSplitter,
    LineTooLong,
    ProtocolError,
    decode_line,
    encode_frame,
    quote,
    with_id,
)
from soukets.hub import ChannelHub, is_lobby_name
from soukets.limits import FloodGuard
from soukets.lobby import LobbyService
from soukets.outbox import Owed
from soukets.tally import Tally

PROTOCOL_VERSION = 1
MAX_NAME = 32

_CLIENT_ID = re.compile(r"[0-9a-f]{4}-[0-9]+\Z")


def looks_like_client_id(text: str) -> bool:
    """
    Whether C{text} has the form of a server-made client id (C{a994-4}).
    """
    return _CLIENT_ID.match(text) is not None


class SessionState(enum.Enum):
    """
    Whether a session still has a connection.
    """

    OPEN = "open"
    CLOSED = "closed"


# (As module names for the hot path: see soukets.limits.ACCEPT.)
OPEN = SessionState.OPEN
CLOSED = SessionState.CLOSED


class SessionHost(Protocol):
    """
    What a session needs of the server it belongs to (the server is one;
    the session does not import it).
    """

    settings: Any  # ServerSettings
    clock: IReactorTime
    hub: ChannelHub
    lobbies: LobbyService
    tally: Tally
    log: Logger

    def forget(self, session: Session) -> None:
        """
        C{session}'s connection is gone.
        """

    def check_subscription_limit(self, session: Session, channel: str) -> None:
        """
        @raise ProtocolError: if C{session} may not subscribe to C{channel}.
        """

    router: Any
    """
    The engine's router, if the server is one node of several: it sends
    frames about other nodes' games there (L{None} for one process).
    """

    def stats(self) -> Deferred[dict[str, Any]]:
        """
        The figures of a C{stats} frame.
        """


@attrs.define(eq=False)
class Session:
    """
    One connected client: it reads the client's lines, answers control
    frames, and hands channel frames to the hub and game frames to the
    lobby.  What it sends goes to C{output}; C{disconnect} drops the
    connection.
    """

    client_id: str
    server: SessionHost
    output: Callable[[Owed], None]
    disconnect: Callable[[], None]
    pause_reading: Callable[[], None] = lambda: None
    resume_reading: Callable[[], None] = lambda: None
    name: str = ""
    state: SessionState = OPEN
    route: str = ""
    """
    The id the session was given on connecting, which never changes (its
    client id does when it takes back a seat): other nodes address it by
    this.
    """
    _splitter: LineSplitter = attrs.field(init=False)
    # Lines read but not handled yet: they wait while an earlier frame's
    # answer is on its way, so that answers keep the order of the frames.
    _held: deque[bytes | LineTooLong | BinaryMessage] = attrs.field(factory=deque)
    _answering: Deferred[None] | None = None
    _flood: FloodGuard = attrs.field(init=False)
    _last_heard: float = 0.0
    _pinged_for: float | None = None  # the silence we sent a ping in
    _idle_timer: IDelayedCall | None = None

    def __attrs_post_init__(self) -> None:
        settings = self.server.settings
        self._splitter = LineSplitter(settings.max_line)
        self._flood = FloodGuard(settings.max_rate, settings.rate_burst, self.server.clock)
        self.name = self.name or self.client_id
        self.route = self.route or self.client_id
        self._last_heard = self.server.clock.seconds()

    @property
    def connected(self) -> bool:
        """
        Whether the client is still connected.
        """
        return self.state is OPEN

    # Output

    def send(self, data: Owed) -> None:
        """
        Send whole frames to the client (if still connected): their bytes,
        or a run of a channel's messages.
        """
        if self.state is OPEN:
            self.output(data)

    def reply(
        self, channel: str, payload: dict[str, Any], frame: Frame | None = None
    ) -> None:
        """
        Send C{payload} on C{channel}, echoing the id of C{frame}.
        """
        self.send(encode_frame(channel, with_id(payload, frame and frame.id)))

    def send_error(self, error: ProtocolError) -> None:
        """
        Tell the client about C{error}, on the channel it names.
        """
        self.server.tally.error(error.code)
        self.send(encode_frame(error.channel, error.to_payload()))

    # Input

    def start(self) -> None:
        """
        The connection is admitted: welcome the client and, unless the server
        says otherwise, queue it.
        """
        settings = self.server.settings
        self.reply(
            CONTROL,
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "client": self.client_id,
                "lobby_size": settings.lobby_size,
                "move_timeout": float(settings.move_timeout),
                "game": settings.game,
            },
        )
        if settings.idle_timeout > 0:
            self._schedule_idle_check(settings.idle_timeout / 2)
        if settings.auto_queue:
            self.server.lobbies.enqueue(self)

    def data_received(self, data: bytes) -> None:
        """
        Bytes arrived from the client.
        """
        lines = self._splitter.feed(data)
        if lines:
            # Only whole lines are signs of life: a client that trickles a
            # line a byte at a time is as silent as one that sends nothing.
            self._last_heard = now = self.server.clock.seconds()
            if len(lines) == 1 and not self._held and self._answering is None:
                # (The usual case, without the queue: one line, nothing
                # waiting before it.)
                if self.state is OPEN:
                    self._handle(lines[0], now)
                return
            self._held.extend(lines)
            self._handle_held()

    def message_received(self, data: bytes, binary: bool = False) -> None:
        """
        One whole frame arrived as one message (over WebSocket): it is one
        line, with or without a line ending.  A binary message is refused.
        """
        self._last_heard = self.server.clock.seconds()
        if binary:
            self._held.append(BinaryMessage(len(data)))
        else:
            if data.endswith(b"\n"):
                data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            max_line = self._splitter.max_line
            self._held.append(LineTooLong(len(data)) if len(data) > max_line else data)
        self._handle_held()

    def _handle_held(self) -> None:
        while (
            self._held
            and self._answering is None
            and self.state is OPEN
        ):
            self._handle(self._held.popleft(), self.server.clock.seconds())

    def _handle(self, line: bytes | LineTooLong | BinaryMessage, now: float) -> None:
        self.server.tally.frames_received += 1
        verdict = self._flood.check(now)
        if verdict is limits.DROP:
            return
        if verdict is not limits.ACCEPT:
            self.send_error(
                ProtocolError(
                    RATE_LIMITED,
                    f"too many frames: at most {self.server.settings.max_rate:g} "
                    "a second; frames over the limit are dropped, and a "
                    "client that keeps flooding is disconnected",
                )
            )
            if verdict is limits.DISCONNECT:
                self.server.log.warn(
                    "client {client} cut off: it kept flooding", client=self.client_id
                )
                self.drop()
            return
        if line.__class__ is bytes:
            self.line_received(line)  # type: ignore[arg-type]
        elif isinstance(line, BinaryMessage):
            self.send_error(
                ProtocolError(
                    BAD_FRAME,
                    "frames are text messages (CHANNEL;JSON), not binary; "
                    f"send for example {EXAMPLE} as a text message",
                )
            )
        else:  # a LineTooLong
            self.send_error(
                ProtocolError(
                    LINE_TOO_LONG,
                    f"lines are limited to {self._splitter.max_line} "
                    f"bytes; this one had {line.length} and was "
                    "discarded",
                )
            )

    def line_received(self, line: bytes) -> None:
        """
        One whole line arrived from the client.
        """
        frame = decode_line(line)
        if frame is None:
            return
        if isinstance(frame, ProtocolError):
            self.send_error(frame)
            return
        try:
            router = self.server.router
            if router is not None and router.forward(self, frame, line):
                return
            if frame.channel == CONTROL:
                self._control(frame)
            else:
                self._on_channel(frame)
        except ProtocolError as error:
            self.send_error(attrs.evolve(error, channel=frame.channel, id=frame.id))
        except Exception:
            # A bug (ours or a game's) must cost this frame, not the
            # connection: say so, and log it once with its traceback.
            self.server.log.failure(
                "internal error handling a {type} frame from {client}",
                type=quote(frame.type),
                client=self.client_id,
            )
            self.send_error(
                ProtocolError(
                    INTERNAL_ERROR,
                    "the server failed to handle this frame (its log says "
                    "why); the connection goes on",
                    frame.channel,
                    frame.id,
                )
            )

    def drop(self) -> None:
        """
        Close the connection from this side (a limit was passed): the
        session ends now, without waiting for the transport to report it.
        """
        self.disconnect()
        self.connection_lost()

    def connection_lost(self) -> None:
        """
        The connection is gone: leave the queue, the game and every channel.
        """
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self._held.clear()
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None
        self.server.forget(self)

    # Idle connections

    def _schedule_idle_check(self, delay: float) -> None:
        self._idle_timer = self.server.clock.callLater(
            max(delay, 0.0), self._check_idle
        )

    def _check_idle(self) -> None:
        """
        Half the idle timeout into a silence, ping the client once; at the
        whole timeout, drop it.  Any line from the client ends a silence.
        """
        self._idle_timer = None
        if self.state is not OPEN:
            return
        timeout = self.server.settings.idle_timeout
        silent = self.server.clock.seconds() - self._last_heard
        if silent >= timeout:
            self.server.log.info(
                "client {client} dropped: silent for {seconds:.0f} s",
                client=self.client_id,
                seconds=silent,
            )
            self.send(encode_frame(CONTROL, {"type": "bye", "reason": "idle"}))
            self.drop()
            return
        if silent >= timeout / 2 and self._pinged_for != self._last_heard:
            self._pinged_for = self._last_heard
            self.send(encode_frame(CONTROL, {"type": "ping"}))
        next_check = timeout if self._pinged_for == self._last_heard else timeout / 2
        self._schedule_idle_check(self._last_heard + next_check - self.server.clock.seconds())

    # Control channel

    def _control(self, frame: Frame) -> None:
        handler = _CONTROL_HANDLERS.get(frame.type)
        if handler is None:
            raise ProtocolError(
                UNKNOWN_TYPE,
                f"unknown control frame type {quote(frame.type)}; the control "
                f"channel takes {', '.join(_CONTROL_HANDLERS)}",
            )
        handler(self, frame)

    def _ping(self, frame: Frame) -> None:
        self.reply(CONTROL, {"type": "pong"}, frame)

    def _pong(self, frame: Frame) -> None:
        pass  # any line is a sign of life; nothing to answer

    def _hello(self, frame: Frame) -> None:
        name = frame.body.get("name")
        if not (
            isinstance(name, str)
            and 1 <= len(name) <= MAX_NAME
            and name.isprintable()
            and name.strip()
        ):
            raise ProtocolError(
                BAD_JSON,
                f"a name is 1 to {MAX_NAME} printable characters, not only "
                'spaces, for example ;{"type":"hello","name":"alice"}',
            )
        if looks_like_client_id(name) and name != self.client_id:
            raise ProtocolError(
                BAD_JSON,
                f"{quote(name)} has the form of a client id, so others would "
                "take it for another player; choose a name such as alice",
            )
        self.name = name
        self.server.lobbies.renamed(self)
        self.reply(CONTROL, {"type": "hello", "name": name}, frame)

    def _queue(self, frame: Frame) -> None:
        d = self.server.lobbies.enqueue(self, frame.id)
        if d is not None:
            self._wait(d)

    def _resume(self, frame: Frame) -> None:
        lobbies = self.server.lobbies
        lobby, client_id, previous = lobbies.resume(self, frame.body.get("token"))
        self.server.adopt(self, client_id)
        self.name = previous.name
        token, catch_up = lobbies.seat(self, lobby, previous)
        self.reply(
            CONTROL,
            {
                "type": "resumed",
                "channel": lobby.channel,
                "you": client_id,
                "players": list(lobby.players),
                "resume": token,
            },
            frame,
        )
        for payload in catch_up:
            self.send(encode_frame(lobby.channel, payload))
        if isinstance(previous, Session) and previous is not self:
            # The old connection was still open (half-open): it is over.
            previous.send(encode_frame(CONTROL, {"type": "bye", "reason": "resumed_elsewhere"}))
            previous.disconnect()

    def _games(self, frame: Frame) -> None:
        self._answer(frame, self.server.lobbies.games(), lambda games: {"type": "games", "games": games})

    def _unqueue(self, frame: Frame) -> None:
        self.server.lobbies.dequeue(self)
        self.reply(CONTROL, {"type": "unqueued"}, frame)

    def _stats(self, frame: Frame) -> None:
        self._answer(frame, self.server.stats(), lambda stats: {"type": "stats", **stats})

    # Answers that come later

    def _answer(
        self, frame: Frame, d: Deferred[Any], render: Callable[[Any], dict[str, Any]]
    ) -> None:
        """
        Answer C{frame} with C{render} of what C{d} gives, or with the error
        it fails with; the frames that follow wait for that answer.
        """
        d.addCallback(lambda value: self.reply(frame.channel, render(value), frame))
        d.addErrback(self._failed, frame)
        self._wait(d)

    def _failed(self, failure: Any, frame: Frame) -> None:
        if failure.check(ProtocolError):
            error = attrs.evolve(failure.value, channel=frame.channel, id=frame.id)
        else:
            self.server.log.failure(
                "internal error answering a {type} frame from {client}",
                failure, type=quote(frame.type), client=self.client_id,
            )
            error = ProtocolError(
                INTERNAL_ERROR,
                "the server failed to answer this frame (its log says why); the "
                "connection goes on",
                frame.channel,
                frame.id,
            )
        self.send_error(error)

    def _wait(self, d: Deferred[Any]) -> None:
        """
        Until C{d} fires, hold the frames that follow (and read no more), so
        that answers keep the order of the frames.
        """
        if d.called:
            return
        self._answering = d
        self.pause_reading()
        d.addBoth(self._answered)

    def _answered(self, result: object) -> None:
        self._answering = None
        self.resume_reading()
        self._handle_held()

    # Named channels

    def _on_channel(self, frame: Frame) -> None:
        hub = self.server.hub
        channel = frame.channel
        if frame.type == "publish":  # first: by far the most frequent
            if "data" not in frame.body:
                raise ProtocolError(
                    BAD_JSON,
                    'a publish carries its message in "data", for example '
                    f'{channel};{{"type":"publish","data":"hello"}}',
                )
            receivers = hub.publish(channel, self, frame.body["data"], frame.data_json)
            if frame.id is not None:
                self.reply(
                    channel,
                    {"type": "published", "receivers": receivers},
                    frame,
                )
        elif frame.type == "subscribe":
            self.server.check_subscription_limit(self, channel)
            members = hub.subscribe(channel, self, frame.body.get("presence") is True)
            router = self.server.router
            counted = router.subscribed(channel) if router is not None else None
            if counted is None:
                self.reply(channel, {"type": "subscribed", "members": members}, frame)
            else:
                # Answered once the other nodes' messages reach this one,
                # with the members of every node.
                self._answer(frame, counted, lambda count: {"type": "subscribed", "members": count})
        elif frame.type == "unsubscribe":
            lobbies = self.server.lobbies
            lobby = lobbies.lobby_of(self)
            if lobby is not None and lobby.channel == channel:
                lobbies.leave(self)
            elif lobbies.watches(self, channel):
                lobbies.unwatch(self)
            else:
                hub.unsubscribe(channel, self)
            self.reply(channel, {"type": "unsubscribed"}, frame)
        elif frame.type == "who":
            members = hub.who(channel, self)
            router = self.server.router
            if router is None or is_lobby_name(channel):
                self.reply(channel, {"type": "members", **members}, frame)
            else:
                self._answer(frame, router.who(channel), lambda every: {"type": "members", **every})
        elif frame.type == "watch":
            answer, catch_up = self.server.lobbies.watch(self, channel)
            self.reply(channel, answer, frame)
            for payload in catch_up:
                self.send(encode_frame(channel, payload))
        elif frame.type == "unwatch":
            self.server.lobbies.unwatch(self)
            self.reply(channel, {"type": "unwatched"}, frame)
        else:
            self.server.lobbies.receive(self, frame)


_CONTROL_HANDLERS: dict[str, Callable[[Session, Frame], None]] = {
    "ping": Session._ping,
    "pong": Session._pong,
    "hello": Session._hello,
    "queue": Session._queue,
    "unqueue": Session._unqueue,
    "stats": Session._stats,
    "resume": Session._resume,
    "games": Session._games,
}

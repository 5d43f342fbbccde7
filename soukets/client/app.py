"""
The client program: a L{PlayerView} between a face on the terminal and a
connection to a server (over TCP, or in-process for C{--local}).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.protocols.basic import LineOnlyReceiver

from soukets.client.model import PlayerView, Quit, Send, Stage
from soukets.frames import encode_frame


class Face(Protocol):
    """
    What the app needs of the terminal side.
    """

    def show(self, text: str) -> None: ...

    def restore(self) -> None: ...

    def redraw(self) -> None: ...

    def close(self) -> None:
        """
        Flush what is left to print, then close; call the app's
        L{ClientApp.face_closed} once done.
        """


class ClientApp:
    """
    Runs one client session: frames from the server go through the model to
    the face; lines typed go through the model to the server.  L{done}
    fires with the exit code: 0 when the person quits, 1 when the
    connection is lost.
    """

    def __init__(self, clock: IReactorTime, view: PlayerView, raw: bool = False) -> None:
        self.clock = clock
        self.view = view
        self.raw = raw
        self.face: Face | None = None
        # Until connected, what is to be sent waits here.
        self._unsent: list[bytes] = []
        self.send_bytes: Callable[[bytes], None] = self._unsent.append
        self.disconnect: Callable[[], None] = lambda: None
        self.done: Deferred[int] = Deferred()
        self._leaving_after_game = False
        self._input_ended = False
        self._last_ping_sent = False
        self._exit_code: int | None = None
        # How to connect again (None: never), and how long to keep trying.
        self.reconnect: Callable[[], Deferred[Any]] | None = None
        self.reconnect_for = 30.0
        self._reconnect_until: float | None = None
        self._retry = 0

    def attach(
        self, send_bytes: Callable[[bytes], None], disconnect: Callable[[], None]
    ) -> None:
        """
        The connection to the server is up: send through C{send_bytes}
        (starting with anything typed before), leave with C{disconnect}.
        """
        self.send_bytes = send_bytes
        self.disconnect = disconnect
        for data in self._unsent:
            send_bytes(data)
        self._unsent.clear()

    def show(self, text: str) -> None:
        if self.face is not None:
            self.face.show(text)

    def line_received(self, line: bytes) -> None:
        """
        One line from the server.
        """
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self.raw:
            self.show(text)
        frame = read_server_line(text)
        if frame is None:
            self.show(f"(unreadable frame from the server: {text[:80]!r})")
            return
        channel, body = frame
        self._send(self.view.received(channel, body))
        if self.face is not None:
            self.face.redraw()
        if self.view.seat_lost:
            self.show("connection lost")
            self.finish(1)
            return
        if self._leaving_after_game and self.view.stage is Stage.ASKING:
            self.finish(0)
        elif self._input_ended:
            if not self._last_ping_sent and self.view.stage is not Stage.CONNECTING:
                self._send_last_ping()
            elif body.get("type") == "pong" and body.get("id") == END_OF_INPUT:
                self._leave_after_input()

    def typed(self, line: str) -> None:
        """
        One line the person typed.
        """
        if self._exit_code is not None:
            return
        outcome = self.view.typed(line)
        if isinstance(outcome, Quit):
            self.finish(0)
        else:
            self._send(outcome)

    def _send(self, sends: list[Send]) -> None:
        for send in sends:
            self.send_bytes(encode_frame(send.channel, send.payload))

    def input_ended(self) -> None:
        """
        Standard input is closed: leave now, or once the coming or current
        game is over if the client is connecting, queued or playing.
        """
        self._input_ended = True
        if self.view.stage is not Stage.CONNECTING:
            self._send_last_ping()

    def _send_last_ping(self) -> None:
        # The server answers in order: once this ping is answered, every
        # command the script sent has had its answer.
        self._last_ping_sent = True
        self._send([Send("", {"type": "ping", "id": END_OF_INPUT})])

    def _leave_after_input(self) -> None:
        """
        A script's input is over and answered.  One that typed moves ahead,
        or is in a game, came to play: it leaves once that game is over.
        Otherwise, outside a game, the end of input is the end.
        """
        playing = self.view.stage in (Stage.PLAYING, Stage.MOVING)
        if playing or (self.view.stage is Stage.QUEUED and self.view.has_held_moves):
            self._leaving_after_game = True
        else:
            self.finish(0)

    def connection_lost(self, reason: Any = None) -> None:
        if self._exit_code is not None:
            return
        if self.view.farewell is not None:
            # The server said goodbye first: a clean end.
            self.show(f"the server closed the connection ({self.view.farewell})")
            self.finish(0)
            return
        if self._may_resume():
            self.show("connection lost — reconnecting…")
            self.send_bytes = self._unsent.append
            self._reconnect_until = self.clock.seconds() + self.reconnect_for
            self._retry = 0
            self._try_again()
            return
        if self.view.stage is Stage.CONNECTING and _tls_failure(reason):
            self.show(
                "the TLS handshake failed: the server's certificate is not "
                f"trusted ({reason.getErrorMessage()}); use --ca FILE for a "
                "private CA or self-signed certificate"
            )
        else:
            self.show("connection lost")
        self.finish(1)

    def _may_resume(self) -> bool:
        view = self.view
        return (
            self.reconnect is not None
            and view.resume_token is not None
            and view.lobby is not None
            and view.stage in (Stage.PLAYING, Stage.MOVING)
        )

    def _try_again(self) -> None:
        """
        Connect again, after 0.5, 1, 2 … s; the new connection takes the
        seat back with the resume token.  Give up once the seat's hold must
        be over.
        """
        assert self.reconnect is not None
        delay = min(4.0, 0.5 * 2 ** self._retry)
        self._retry += 1
        if self._reconnect_until is not None and self.clock.seconds() + delay > self._reconnect_until:
            self.show("connection lost: the server could not be reached in time")
            self.finish(1)
            return
        self.view.resuming = True
        self.view.stage = Stage.CONNECTING

        def attempt() -> None:
            if self._exit_code is None:
                self.reconnect().addErrback(lambda failure: self._try_again())  # type: ignore[misc]

        self.clock.callLater(delay, attempt)

    def finish(self, code: int) -> None:
        """
        End the session with exit code C{code}: leave the server, then let
        the face print what it still holds before L{done} fires.
        """
        if self._exit_code is not None:
            return
        self._exit_code = code
        self.disconnect()
        if self.face is None:
            self.face_closed()
        else:
            self.face.restore()
            self.face.close()
            # Never wait long on a terminal that does not take output.
            self.clock.callLater(2.0, self.face_closed)

    def face_closed(self) -> None:
        """
        The face has printed everything and closed.
        """
        if self._exit_code is not None and not self.done.called:
            self.done.callback(self._exit_code)


class ServerConnection(LineOnlyReceiver):
    """
    The TCP connection to a soukets server, handing each line to the app.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(self, app: ClientApp) -> None:
        self.app = app

    def connectionMade(self) -> None:
        self.app.attach(self.transport.write, self.transport.loseConnection)

    def lineReceived(self, line: bytes) -> None:
        self.app.line_received(line)

    def connectionLost(self, reason: Any = None) -> None:
        self.app.connection_lost(reason)


END_OF_INPUT = "end-of-input"


def _tls_failure(reason: Any) -> bool:
    try:
        from OpenSSL import SSL
    except ImportError:  # pragma: no cover
        return False
    return reason is not None and hasattr(reason, "check") and bool(reason.check(SSL.Error))


def read_server_line(text: str) -> tuple[str, Mapping[str, Any]] | None:
    """
    One server frame as (channel, JSON object), or L{None} if it is not one.
    """
    channel, _, document = text.partition(";")
    try:
        body = json.loads(document)
    except ValueError:
        return None
    return (channel, body) if isinstance(body, dict) else None


def frames_of(data: bytes) -> list[tuple[str, Mapping[str, Any]]]:
    """
    Split bytes of server frames into (channel, JSON object) pairs.
    """
    frames = (read_server_line(line) for line in data.decode("utf-8").splitlines())
    return [frame for frame in frames if frame is not None]

"""
The client's two faces on standard input and output: an interactive
terminal (a prompt with a live countdown, kept intact while messages
arrive) and a script mode (one line per event, for programs and tests).
"""

from __future__ import annotations

import codecs
import enum
import os
import sys
import termios
from typing import Callable, Iterator

import attrs
from twisted.internet.interfaces import IHalfCloseableProtocol, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

CLEAR_LINE = "\r\x1b[K"


class Key(enum.Enum):
    """
    Keys with a meaning of their own for the line editor.
    """

    INTERRUPT = "interrupt"  # Ctrl-C
    EOF = "eof"  # Ctrl-D on an empty line


@attrs.define
class LineEditor:
    """
    Turns the bytes of a terminal in raw mode into typed lines, keeping the
    line being typed so that it can be drawn again.  No I/O.
    """

    buffer: str = ""
    _decoder: codecs.IncrementalDecoder = attrs.field(
        factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )
    _escape: str = ""  # an escape sequence being skipped

    def feed(self, data: bytes) -> Iterator[str | Key]:
        """
        Take keystrokes; yield every line finished (without its ending) and
        every special L{Key}.
        """
        for char in self._decoder.decode(data):
            if self._escape:
                self._escape += char
                # ESC [ params final, or ESC and one character.
                if (len(self._escape) == 2 and char != "[") or (
                    len(self._escape) > 2 and "\x40" <= char <= "\x7e"
                ):
                    self._escape = ""
                continue
            if char == "\x1b":
                self._escape = char
            elif char in "\r\n":
                line, self.buffer = self.buffer, ""
                yield line
            elif char in "\x7f\x08":
                self.buffer = self.buffer[:-1]
            elif char == "\x15":  # Ctrl-U
                self.buffer = ""
            elif char == "\x03":
                yield Key.INTERRUPT
            elif char == "\x04":
                if not self.buffer:
                    yield Key.EOF
            elif char.isprintable():
                self.buffer += char


class RawTerminal:
    """
    Puts a terminal in character-at-a-time mode with no echo (the client
    draws what is typed), and puts it back as it was.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list | None = None

    def enter(self) -> None:
        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def leave(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            self._saved = None


BOLD_RED = "\x1b[1;31m"
PLAIN = "\x1b[0m"


class TerminalUI(Protocol):
    """
    The interactive face, for L{twisted.internet.stdio.StandardIO}: every
    event is printed above a prompt line showing the countdown and what is
    being typed; the prompt is redrawn each second.

    @param typed: called with each line typed.
    @param quit: called on Ctrl-C, or Ctrl-D on an empty line.
    @param status: gives the prompt's status text.
    """

    def __init__(
        self,
        clock: IReactorTime,
        typed: Callable[[str], None],
        quit: Callable[[], None],
        status: Callable[[], str],
        terminal: RawTerminal | None = None,
        closed: Callable[[], None] = lambda: None,
    ) -> None:
        self.clock = clock
        self._typed = typed
        self._quit = quit
        self._closed = closed
        self._status = status
        self.alert: Callable[[], bool] = lambda: False
        self._alerted = False
        self.editor = LineEditor()
        self.terminal = terminal
        self._ticker = LoopingCall(self.redraw)
        self._ticker.clock = clock

    def connectionMade(self) -> None:
        if self.terminal is not None:
            self.terminal.enter()
        self._ticker.start(1.0, now=True)

    def connectionLost(self, reason: object = None) -> None:
        self.restore()
        self._closed()

    def close(self) -> None:
        self.transport.loseConnection()

    def restore(self) -> None:
        """
        Put the terminal back as it was, leaving the cursor on a fresh line.
        """
        if self._ticker.running:
            self._ticker.stop()
            self.transport.write(CLEAR_LINE.encode())
        if self.terminal is not None:
            self.terminal.leave()

    def prompt(self) -> str:
        if not self._ticker.running:  # restored: no more prompt
            return ""
        status = self._status()
        alert = self.alert()
        if alert and not self._alerted:
            self.transport.write(b"\a")  # the terminal's bell, once
        self._alerted = alert
        if status and alert:
            status = BOLD_RED + status + PLAIN  # the countdown stands out
        return (f"[{status}] " if status else "") + "> " + self.editor.buffer

    def redraw(self) -> None:
        if self._ticker.running:
            self.transport.write((CLEAR_LINE + self.prompt()).encode("utf-8"))

    def show(self, text: str) -> None:
        """
        Print C{text} above the prompt.
        """
        lines = text.replace("\n", "\r\n")
        self.transport.write(
            (CLEAR_LINE + lines + "\r\n" + self.prompt()).encode("utf-8")
        )

    def dataReceived(self, data: bytes) -> None:
        for event in self.editor.feed(data):
            if event is Key.INTERRUPT or event is Key.EOF:
                self._quit()
                return
            assert isinstance(event, str)
            # Keep what was typed on screen, as a terminal would.
            self.transport.write((CLEAR_LINE + self.prompt() + event + "\r\n").encode("utf-8"))
            self._typed(event)
        self.redraw()


@implementer(IHalfCloseableProtocol)
class ScriptUI(LineOnlyReceiver):
    """
    The face for programs: each line of standard input is a command, each
    event one line of output; no prompt, no redrawing.

    @param typed: called with each line read.
    @param ended: called when standard input ends.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(
        self,
        typed: Callable[[str], None],
        ended: Callable[[], None],
        closed: Callable[[], None] = lambda: None,
    ) -> None:
        self._typed = typed
        self._ended = ended
        self._closed = closed

    def lineReceived(self, line: bytes) -> None:
        self._typed(line.decode("utf-8", "replace").rstrip("\r"))

    def show(self, text: str) -> None:
        self.transport.write(text.encode("utf-8") + b"\n")

    def readConnectionLost(self) -> None:
        self._ended()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: object = None) -> None:
        self._closed()

    def close(self) -> None:
        self.transport.loseConnection()

    def restore(self) -> None:
        pass

    def redraw(self) -> None:
        pass


def stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (ValueError, OSError):
        return False

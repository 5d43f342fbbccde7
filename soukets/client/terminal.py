"""
The client's two faces on standard input and output: an interactive
terminal (a prompt with a live countdown, kept intact while messages
arrive) and a script mode (one line per event, for programs and tests).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import termios
from typing import Any, Callable

from twisted.conch.insults.insults import ServerProtocol
from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.interfaces import IHalfCloseableProtocol, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

class RawTerminal:
    """
    Puts a terminal in character-at-a-time mode with no echo (the client
    draws what is typed), and puts it back as it was.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list | None = None
        self._on_resize: Callable[[int], None] | None = None

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
        if self._on_resize is not None:
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
            self._on_resize = None

    def width(self) -> int:
        try:
            return os.get_terminal_size(self.fd).columns or 80
        except OSError:
            return shutil.get_terminal_size().columns or 80

    def on_resize(self, resized: Callable[[int], None]) -> None:
        """
        Call C{resized} with the new width whenever the terminal is resized
        (SIGWINCH; the handler only hands the work to the reactor).
        """
        from twisted.internet import reactor

        self._on_resize = resized
        signal.signal(
            signal.SIGWINCH,
            lambda number, frame: reactor.callFromThread(resized, self.width()),
        )


BOLD_RED = "\x1b[1;31m"
PLAIN = "\x1b[0m"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _Discard:
    """
    Where the line editor's own drawing goes: nowhere (the face draws the
    whole prompt itself, wrapped lines included).
    """

    def write(self, data: bytes) -> None:
        pass

    def loseConnection(self) -> None:
        pass


class _Editing(HistoricRecvLine):
    """
    The line being typed, kept by Twisted's own line editing
    (C{twisted.conch.recvline}): cursor keys, Home/End, Up/Down history,
    Backspace/Delete; the keys themselves are decoded by
    C{twisted.conch.insults}.  It draws nothing: after each key the face
    draws the prompt again.
    """

    def __init__(self, face: TerminalUI) -> None:
        self.face = face

    def initializeScreen(self) -> None:
        self.mode = "insert"  # (and nothing drawn: the face owns the screen)

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        if keyID == b"\x03":  # Ctrl-C
            self.face._quit()
            return
        if keyID == b"\x04":  # Ctrl-D: leave on an empty line
            if not self.lineBuffer:
                self.face._quit()
            return
        if keyID == b"\x15":  # Ctrl-U: clear the line
            self.lineBuffer, self.lineBufferIndex = [], 0
        elif keyID == b"\x01":  # Ctrl-A
            self.lineBufferIndex = 0
        elif keyID == b"\x05":  # Ctrl-E
            self.lineBufferIndex = len(self.lineBuffer)
        elif isinstance(keyID, bytes) and len(keyID) == 1 and keyID[0] >= 0x80:
            # A byte of a UTF-8 character (conch takes only ASCII as text).
            self.characterReceived(keyID, False)
        else:
            super().keystrokeReceived(keyID, modifier)
        self.face.redraw()

    def handle_TAB(self) -> None:
        text = self.text()
        choices = self.face.complete(text)
        if not choices:
            return
        common = os.path.commonprefix(choices)
        if len(choices) > 1 and len(common) <= len(text):
            self.face.show("  ".join(choices))
            return
        done = common + (" " if len(choices) == 1 else "")
        self.lineBuffer = [bytes([b]) for b in done.encode("utf-8")]
        self.lineBufferIndex = len(self.lineBuffer)

    def text(self, end: int | None = None) -> str:
        return b"".join(self.lineBuffer[:end]).decode("utf-8", "replace")

    def lineReceived(self, line: bytes) -> None:
        self.face._line(line.decode("utf-8", "replace"))


class TerminalUI(Protocol):
    """
    The interactive face, for L{twisted.internet.stdio.StandardIO}: every
    event is printed above a prompt showing the countdown and what is being
    typed; the prompt is redrawn each second, however many rows the typed
    text wraps over, and at once when the terminal is resized.  Editing
    (arrows, Home/End, history, Tab completion) is Twisted's
    (L{_Editing}).

    @param typed: called with each line typed.
    @param quit: called on Ctrl-C, or Ctrl-D on an empty line.
    @param status: gives the prompt's status text.
    @param complete: gives the lines a Tab may complete the typed text to.
    """

    def __init__(
        self,
        clock: IReactorTime,
        typed: Callable[[str], None],
        quit: Callable[[], None],
        status: Callable[[], str],
        terminal: RawTerminal | None = None,
        closed: Callable[[], None] = lambda: None,
        complete: Callable[[str], list[str]] = lambda text: [],
        width: int | None = None,
    ) -> None:
        self.clock = clock
        self._typed = typed
        self._quit = quit
        self._closed = closed
        self._status = status
        self.complete = complete
        self.alert: Callable[[], bool] = lambda: False
        self._alerted = False
        self.terminal = terminal
        self.width = width or (terminal.width() if terminal is not None else 80)
        self._row = 0  # the cursor's row below the prompt's first
        self._ticker = LoopingCall(self.redraw)
        self._ticker.clock = clock
        self.editor = _Editing(self)
        self._keys = ServerProtocol(lambda: self.editor)

    def connectionMade(self) -> None:
        self._keys.makeConnection(_Discard())
        if self.terminal is not None:
            self.terminal.enter()
            self.terminal.on_resize(self.resized)
        self._ticker.start(1.0, now=True)

    def connectionLost(self, reason: object = None) -> None:
        self.restore()
        self._closed()

    def close(self) -> None:
        self.transport.loseConnection()

    def resized(self, width: int) -> None:
        """
        The terminal is now C{width} columns wide.  Terminals reflow what is
        on screen when resized, so the prompt's rows are counted again at
        the new width before it is erased and drawn anew.
        """
        self.width = max(1, width)
        if self._ticker.running:
            shown = len(_ANSI.sub("", self._head()))
            at = shown + len(self.editor.text(self.editor.lineBufferIndex))
            self._row = at // self.width
        self.redraw()

    def restore(self) -> None:
        """
        Put the terminal back as it was, leaving the cursor on a fresh line.
        """
        if self._ticker.running:
            self._ticker.stop()
            self.transport.write(self._erase().encode())
        if self.terminal is not None:
            self.terminal.leave()

    def _head(self) -> str:
        status = self._status()
        alert = self.alert()
        if alert and not self._alerted:
            self.transport.write(b"\a")  # the terminal's bell, once
        self._alerted = alert
        if status and alert:
            status = BOLD_RED + status + PLAIN  # the countdown stands out
        return (f"[{status}] " if status else "") + "> "

    def prompt(self) -> str:
        if not self._ticker.running:  # restored: no more prompt
            return ""
        return self._head() + self.editor.text()

    def _erase(self) -> str:
        """
        Back to the prompt's first row, and clear from there down.
        """
        up = f"\x1b[{self._row}A" if self._row else ""
        self._row = 0
        return "\r" + up + "\x1b[J"

    def _draw(self) -> str:
        """
        The prompt and the typed text (over as many rows as they take), with
        the cursor put where the editing is.
        """
        if not self._ticker.running:
            return ""
        head = self._head()
        text = self.editor.text()
        shown = len(_ANSI.sub("", head))
        end = shown + len(text)
        at = shown + len(self.editor.text(self.editor.lineBufferIndex))
        out = head + text
        width = self.width
        if end and end % width == 0:
            out += "\r\n"  # past the last column: on to the next row now
        end_row = end // width
        cursor_row, cursor_col = divmod(at, width)
        if at < end:  # the cursor goes back to where the editing is
            if end_row > cursor_row:
                out += f"\x1b[{end_row - cursor_row}A"
            out += f"\r\x1b[{cursor_col}C" if cursor_col else "\r"
        self._row = cursor_row
        return out

    def redraw(self) -> None:
        if self._ticker.running:
            self.transport.write((self._erase() + self._draw()).encode("utf-8"))

    def show(self, text: str) -> None:
        """
        Print C{text} above the prompt.
        """
        lines = text.replace("\n", "\r\n")
        self.transport.write((self._erase() + lines + "\r\n" + self._draw()).encode("utf-8"))

    def _line(self, line: str) -> None:
        # Keep what was typed on screen, as a terminal would.
        head = self._head() if self._ticker.running else ""
        self.transport.write((self._erase() + head + line + "\r\n").encode("utf-8"))
        self._typed(line)

    def dataReceived(self, data: bytes) -> None:
        self._keys.dataReceived(data)


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

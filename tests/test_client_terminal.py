"""
Tests for L{soukets.client.terminal}: the line editor, and the prompt with
its countdown, drawn on an in-memory transport with a L{task.Clock}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from soukets.client.terminal import ScriptUI, TerminalUI


ERASE = "\r\x1b[J"
LEFT = b"\x1b[D"
RIGHT = b"\x1b[C"
UP = b"\x1b[A"
DOWN = b"\x1b[B"
HOME = b"\x1b[H"
END = b"\x1b[F"


def render(output: str, width: int) -> list[str]:
    """
    What a terminal of C{width} columns shows after C{output}: a small
    emulator of the sequences the face uses (CR, LF, CUU, CUF, ED, and
    wrapping at the last column).
    """
    import re

    rows: list[list[str]] = [[]]
    row = col = 0
    pending_wrap = False
    for token in re.findall(r"\x1b\[(\d*)([A-Za-z])|(.)", output, re.S):
        count, code, char = token
        if code:
            n = int(count or 1)
            if code == "A":
                row = max(0, row - n)
            elif code == "C":
                col = min(width - 1, col + n)
            elif code == "J":
                rows[row] = rows[row][:col]
                del rows[row + 1:]
            elif code == "m":
                continue
            pending_wrap = False
            continue
        if char == "\r":
            col, pending_wrap = 0, False
        elif char == "\n":
            row += 1
            pending_wrap = False
        elif char == "\a":
            continue
        else:
            if pending_wrap:
                row, col, pending_wrap = row + 1, 0, False
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            if col == width - 1:
                pending_wrap = True
            else:
                col += 1
        while len(rows) <= row:
            rows.append([])
    return ["".join(r).rstrip() for r in rows]


class TerminalUITests(SynchronousTestCase):
    def setUp(self, width: int = 80) -> None:
        self.clock = Clock()
        self.typed: list[str] = []
        self.quits: list[bool] = []
        self.seconds = [10]
        self.ui = TerminalUI(
            self.clock, self.typed.append, lambda: self.quits.append(True),
            lambda: f"round 1, {self.seconds[0]} s",
            complete=lambda text: [c for c in ("/sub", "/stats", "/quit") if c.startswith(text)],
            width=width,
        )
        self.transport = StringTransport()
        self.ui.makeConnection(self.transport)
        self.everything = ""

    def screen(self) -> str:
        text = self.transport.value().decode("utf-8")
        self.transport.clear()
        self.everything += text
        return text

    def shown(self) -> list[str]:
        self.screen()
        return [line for line in render(self.everything, self.ui.width)]

    def test_countdown_redrawn_each_second(self) -> None:
        self.assertEqual(self.screen(), ERASE + "[round 1, 10 s] > ")
        self.seconds[0] = 9
        self.clock.advance(1)
        self.assertEqual(self.screen(), ERASE + "[round 1, 9 s] > ")

    def test_typing_survives_messages(self) -> None:
        """
        A message arriving while the person types is printed above the
        prompt, which comes back with what was typed so far.
        """
        self.ui.dataReceived(b"pap")
        self.ui.show("bob has played")
        self.assertEqual(self.shown(), ["bob has played", "[round 1, 10 s] > pap"])
        self.clock.advance(1)
        self.assertEqual(self.shown()[-1], "[round 1, 10 s] > pap")
        self.ui.dataReceived(b"er\r")
        self.assertEqual(self.typed, ["paper"])
        self.assertEqual(self.shown(), ["bob has played", "[round 1, 10 s] > paper", "[round 1, 10 s] >"])

    def test_wrapped_input_redrawn_cleanly(self) -> None:
        """
        Typed text that wraps past the terminal's width is redrawn in place
        at every tick: no stale copies of the prompt.
        """
        self.setUp(width=40)
        self.ui.dataReceived(b"x" * 73)
        for second in (9, 8, 7):
            self.seconds[0] = second
            self.clock.advance(1)
        prompt = "[round 1, 7 s] > " + "x" * 73
        self.assertEqual(self.shown(), [prompt[:40], prompt[40:80], prompt[80:]])
        self.ui.show("bob has played")
        self.assertEqual(self.shown(), ["bob has played", prompt[:40], prompt[40:80], prompt[80:]])

    def test_exactly_full_rows(self) -> None:
        self.setUp(width=20)
        self.ui.dataReceived(b"y" * 22)  # "[round 1, 10 s] > " is 18: 40 in all
        self.clock.advance(1)
        self.clock.advance(1)
        prompt = "[round 1, 10 s] > " + "y" * 22
        self.assertEqual(self.shown(), [prompt[:20], prompt[20:40], ""])

    def test_resized(self) -> None:
        self.ui.dataReceived(b"z" * 70)
        self.ui.resized(40)
        self.clock.advance(1)
        lines = self.shown()
        self.assertEqual("".join(lines[-3:]), "[round 1, 10 s] > " + "z" * 70)

    def test_editing_keys_and_history(self) -> None:
        self.ui.dataReceived(b"helo" + LEFT + b"l" + END + b"!")
        self.ui.dataReceived(HOME + b">" + b"\r")
        self.assertEqual(self.typed, [">hello!"])
        self.ui.dataReceived(b"second\r")
        self.ui.dataReceived(UP + UP + b"\r")
        self.assertEqual(self.typed[-1], ">hello!")
        self.ui.dataReceived(UP + DOWN + DOWN + b"last\r")
        self.assertEqual(self.typed[-1], "last")
        self.ui.dataReceived(b"abc\x7f\x7fX\r")  # backspace twice
        self.assertEqual(self.typed[-1], "aX")
        self.ui.dataReceived(b"gone\x15kept\r")  # Ctrl-U
        self.assertEqual(self.typed[-1], "kept")

    def test_cursor_drawn_where_editing(self) -> None:
        self.ui.dataReceived(b"abcdef" + LEFT + LEFT)
        self.screen()
        self.clock.advance(1)
        out = self.screen()
        self.assertTrue(out.endswith("\r\x1b[22C"), repr(out))  # 18 + 4

    def test_tab_completion(self) -> None:
        self.ui.dataReceived(b"/su\t")
        self.assertEqual(self.ui.editor.text(), "/sub ")
        self.ui.dataReceived(b"\x15/s\t")  # two candidates: listed
        self.assertIn("/sub  /stats", self.shown())
        self.assertEqual(self.ui.editor.text(), "/s")
        self.ui.dataReceived(b"t\t")
        self.assertEqual(self.ui.editor.text(), "/stats ")

    def test_quit_keys(self) -> None:
        self.ui.dataReceived(b"\x03")
        self.ui.dataReceived(b"x\x04")  # Ctrl-D on a line with text: nothing
        self.ui.dataReceived(b"\x15\x04")
        self.assertEqual(self.quits, [True, True])

    def test_restore_stops_ticking(self) -> None:
        self.ui.restore()
        self.screen()
        self.clock.advance(5)
        self.assertEqual(self.screen(), "")

    def test_non_ascii(self) -> None:
        self.ui.dataReceived("héhé\r".encode())
        self.assertEqual(self.typed, ["héhé"])


class ScriptUITests(SynchronousTestCase):
    def test_lines(self) -> None:
        typed: list[str] = []
        ended: list[bool] = []
        ui = ScriptUI(typed.append, lambda: ended.append(True))
        transport = StringTransport()
        ui.makeConnection(transport)
        ui.dataReceived(b"r\r\n/ping\n")
        ui.show("round 1: bob played rock — draw")
        ui.readConnectionLost()
        self.assertEqual(typed, ["r", "/ping"])
        self.assertEqual(ended, [True])
        self.assertEqual(transport.value().decode(), "round 1: bob played rock — draw\n")


class TerminalUIRestoreTests(SynchronousTestCase):
    def test_no_prompt_after_restore(self) -> None:
        """
        Once the client is leaving, the prompt is not drawn again.
        """
        clock = Clock()
        ui: TerminalUI
        ui = TerminalUI(clock, lambda line: ui.restore(), lambda: None, lambda: "x")
        transport = StringTransport()
        ui.makeConnection(transport)
        transport.clear()
        ui.dataReceived(b"n\r")
        self.assertEqual(transport.value().decode(), ERASE + "[x] > n" + ERASE + "[x] > n\r\n" + ERASE)

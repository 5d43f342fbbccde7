"""
Tests for L{soukets.client.terminal}: the line editor, and the prompt with
its countdown, drawn on an in-memory transport with a L{task.Clock}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from soukets.client.terminal import CLEAR_LINE, Key, LineEditor, ScriptUI, TerminalUI


class LineEditorTests(SynchronousTestCase):
    def test_lines(self) -> None:
        editor = LineEditor()
        self.assertEqual(list(editor.feed(b"roc")), [])
        self.assertEqual(editor.buffer, "roc")
        self.assertEqual(list(editor.feed(b"k\rpa")), ["rock"])
        self.assertEqual(editor.buffer, "pa")

    def test_editing(self) -> None:
        editor = LineEditor()
        list(editor.feed(b"abc\x7f\x7fz"))
        self.assertEqual(editor.buffer, "az")
        list(editor.feed(b"\x15x"))
        self.assertEqual(editor.buffer, "x")

    def test_escape_sequences_ignored(self) -> None:
        editor = LineEditor()
        self.assertEqual(list(editor.feed(b"a\x1b[A\x1b[1;5Cb\x1bOc\n")), ["abc"])

    def test_utf8_split(self) -> None:
        editor = LineEditor()
        list(editor.feed("é".encode()[:1]))
        list(editor.feed("é".encode()[1:]))
        self.assertEqual(editor.buffer, "é")

    def test_keys(self) -> None:
        editor = LineEditor()
        self.assertEqual(list(editor.feed(b"\x03")), [Key.INTERRUPT])
        self.assertEqual(list(editor.feed(b"\x04")), [Key.EOF])
        list(editor.feed(b"ab\x04"))
        self.assertEqual(editor.buffer, "ab")  # Ctrl-D ends only an empty line


class TerminalUITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.typed: list[str] = []
        self.quits: list[bool] = []
        self.seconds = [10]
        self.ui = TerminalUI(
            self.clock, self.typed.append, lambda: self.quits.append(True),
            lambda: f"round 1, {self.seconds[0]} s",
        )
        self.transport = StringTransport()
        self.ui.makeConnection(self.transport)

    def screen(self) -> str:
        text = self.transport.value().decode("utf-8")
        self.transport.clear()
        return text

    def test_countdown_redrawn_each_second(self) -> None:
        self.assertEqual(self.screen(), CLEAR_LINE + "[round 1, 10 s] > ")
        self.seconds[0] = 9
        self.clock.advance(1)
        self.assertEqual(self.screen(), CLEAR_LINE + "[round 1, 9 s] > ")

    def test_typing_survives_messages(self) -> None:
        """
        A message arriving while the person types is printed above the
        prompt, which comes back with what was typed so far.
        """
        self.screen()
        self.ui.dataReceived(b"pap")
        self.screen()
        self.ui.show("bob has played")
        self.assertEqual(self.screen(), CLEAR_LINE + "bob has played\r\n[round 1, 10 s] > pap")
        self.clock.advance(1)
        self.assertTrue(self.screen().endswith("> pap"))
        self.ui.dataReceived(b"er\r")
        self.assertEqual(self.typed, ["paper"])

    def test_quit_keys(self) -> None:
        self.ui.dataReceived(b"\x03")
        self.ui.dataReceived(b"\x04")
        self.assertEqual(self.quits, [True, True])

    def test_restore_stops_ticking(self) -> None:
        self.ui.restore()
        self.screen()
        self.clock.advance(5)
        self.assertEqual(self.screen(), "")


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
        self.assertEqual(transport.value().decode(), CLEAR_LINE + "[x] > n\r\n" + CLEAR_LINE)

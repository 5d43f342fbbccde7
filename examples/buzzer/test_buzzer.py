"""
How to test a soukets game: drive it through a small L{IGameContext} of
your own, with time from a L{task.Clock}, so that no socket and no real
time is involved.  Run with C{python -m twisted.trial test_buzzer}.
"""

from typing import Any, Mapping

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from buzzer import Buzzer
from soukets.frames import Frame, ProtocolError
from soukets.games.base import GameOver, GameSettings, IGame, IGameContext


@implementer(IGameContext)
@attrs.define
class Table:
    """
    A lobby for one game: it records what the game sends and how it ended.
    """

    players: tuple[str, ...]
    settings: GameSettings = attrs.field(factory=GameSettings)
    clock: Clock = attrs.field(factory=Clock)
    channel: str = "lobby:test"
    sent: list[dict[str, Any]] = attrs.field(factory=list)
    ended: list[GameOver | None] = attrs.field(factory=list)
    gone: set[str] = attrs.field(factory=set)

    def present(self) -> tuple[str, ...]:
        return tuple(p for p in self.players if p not in self.gone)

    def send(self, payload: Mapping[str, Any]) -> None:
        self.sent.append(dict(payload))

    def end(self, over: GameOver | None) -> None:
        self.ended.append(over)


def frame(kind: str) -> Frame:
    return Frame("lobby:test", kind, {"type": kind})


class BuzzerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.table = Table(("a", "b"))
        self.game = Buzzer(self.table)
        verifyObject(IGame, self.game)
        self.game.start()

    def test_first_buzz_wins(self) -> None:
        self.assertEqual(self.table.sent, [{"type": "ready"}])
        self.game.received("b", frame("buzz"))
        [over] = self.table.ended
        self.assertEqual((over.reason, list(over.winners)), ("completed", ["b"]))
        self.assertEqual(dict(over.scores), {"a": 0, "b": 1})

    def test_other_frames_refused(self) -> None:
        error = self.assertRaises(ProtocolError, self.game.received, "a", frame("shout"))
        self.assertEqual(error.code, "unknown_type")
        self.assertEqual(self.table.ended, [])

    def test_last_player_left_wins(self) -> None:
        self.table.gone.add("a")
        self.game.player_left("a")
        [over] = self.table.ended
        self.assertEqual((over.reason, list(over.winners)), ("player_left", ["b"]))

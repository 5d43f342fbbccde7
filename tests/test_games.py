"""
Tests for L{soukets.games}: finding games through the entry point group,
and the chat game.
"""

from twisted.trial.unittest import SynchronousTestCase

from soukets.games import available_games, load_game
from soukets.games.chat import Chat
from soukets.games.rps import RockPaperScissors


class RegistryTests(SynchronousTestCase):
    def test_builtin_games(self) -> None:
        self.assertEqual({"rps", "chat"} - set(available_games()), set())
        self.assertIs(load_game("rps"), RockPaperScissors)
        self.assertIs(load_game("chat"), Chat)

    def test_unknown(self) -> None:
        self.assertRaises(KeyError, load_game, "chess")


class ThirdPartyGameTests(SynchronousTestCase):
    """
    A game from another distribution plugs in through the entry point group
    alone: examples/buzzer, an installed distribution in miniature.
    """

    def setUp(self) -> None:
        import sys

        from tests.daemon import CHECKOUT

        self.path = str(CHECKOUT / "examples" / "buzzer")
        sys.path.insert(0, self.path)
        self.addCleanup(sys.path.remove, self.path)

    def test_found(self) -> None:
        self.assertIn("buzzer", available_games())
        self.assertEqual(load_game("buzzer").__name__, "Buzzer")

    def test_played(self) -> None:
        from soukets.server import ServerSettings

        from tests.support import Harness

        h = Harness(ServerSettings(game="buzzer"))
        a, b = h.connect(), h.connect()
        frames = h.frames(a)
        channel = frames[2][1]["channel"]
        self.assertEqual(frames[3:], [(channel, {"type": "ready"})])
        h.send(b, channel + ';{"type":"buzz"}')
        over = h.frames(a)[0][1]
        self.assertEqual((over["type"], over["winners"]), ("game_over", [b.client_id]))

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


_INSTALLED: list[str] = []


def installed_buzzer() -> str:
    """
    Where examples/buzzer is installed (once per test process), by pip,
    offline, from a copy of its source (so that nothing is built in the
    checkout).
    """
    if not _INSTALLED:
        import shutil
        import subprocess
        import sys
        import tempfile

        from tests.daemon import CHECKOUT

        root = tempfile.mkdtemp(prefix="soukets-buzzer-")
        source = shutil.copytree(CHECKOUT / "examples" / "buzzer", f"{root}/source")
        target = f"{root}/site"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-build-isolation", "--no-index", "--target", target, source],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        _INSTALLED.append(target)
    return _INSTALLED[0]


class ThirdPartyGameTests(SynchronousTestCase):
    """
    A game from another distribution plugs in through the entry point group
    alone: examples/buzzer, installed with pip (offline, into a directory
    of its own) as its users would.
    """

    def setUp(self) -> None:
        import sys

        self.target = installed_buzzer()
        sys.path.insert(0, self.target)
        self.addCleanup(sys.path.remove, self.target)

    def test_registered_by_install(self) -> None:
        from importlib.metadata import entry_points

        [entry] = [e for e in entry_points(group="soukets.games") if e.name == "buzzer"]
        self.assertEqual(entry.value, "buzzer:Buzzer")
        self.assertEqual(load_game("buzzer").__name__, "Buzzer")

    def test_builtin_games_stay(self) -> None:
        """
        An installed third-party game never hides soukets' own.
        """
        self.assertEqual({"buzzer", "rps", "chat"} - set(available_games()), set())
        self.assertIs(load_game("rps"), RockPaperScissors)

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

    def test_its_own_tests_pass(self) -> None:
        """
        examples/buzzer/test_buzzer.py, the example of testing a game with
        task.Clock, passes.
        """
        import subprocess
        import sys

        from tests.daemon import CHECKOUT, environment

        env = environment()
        env["PYTHONPATH"] = self.target + ":" + env["PYTHONPATH"]
        done = subprocess.run(
            [sys.executable, "-m", "twisted.trial", "test_buzzer"],
            cwd=str(CHECKOUT / "examples" / "buzzer"), env=env,
            capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("PASSED (successes=3)", done.stdout)

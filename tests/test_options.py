"""
Tests for L{soukets.options.Options} and the twistd plugin.
"""

from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from soukets.options import DEFAULT_LISTEN, Options


class OptionsTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--counter-file", self.mktemp() + "/c.json", *args])
        return options

    def test_defaults(self) -> None:
        options = self.parse()
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])
        self.assertIn("backlog=4096", DEFAULT_LISTEN)
        self.assertEqual(
            (options["taille-lobby"], options["max-clients"], options["move-timeout"]),
            (2, 1000, 10.0),
        )
        self.assertEqual((options["rounds"], options["game"], options["max-line"]), (1, "rps", 65536))
        self.assertFalse(options["no-auto-queue"])
        self.assertIsInstance(options["counter-file"], Path)

    def test_values(self) -> None:
        options = self.parse(
            "--listen", "tcp:7777", "--listen", "tcp6:7777:interface=\\:\\:1",
            "--lobby-size", "4", "--move-timeout", "2.5", "--rounds", "3",
            "--game", "chat", "--no-auto-queue", "--max-clients", "20",
        )
        self.assertEqual(options["listen"], ["tcp:7777", "tcp6:7777:interface=\\:\\:1"])
        self.assertEqual(options["taille-lobby"], 4)
        self.assertEqual((options["move-timeout"], options["rounds"]), (2.5, 3))
        self.assertEqual((options["game"], options["max-clients"]), ("chat", 20))
        self.assertTrue(options["no-auto-queue"])

    def test_taille_lobby(self) -> None:
        self.assertEqual(self.parse("--taille-lobby=3")["taille-lobby"], 3)

    def test_refused(self) -> None:
        for args in (
            ["--taille-lobby", "1"],
            ["--lobby-size", "0"],
            ["--move-timeout", "0"],
            ["--move-timeout", "nan"],
            ["--rounds", "0"],
            ["--max-clients", "-3"],
            ["--game", "nope"],
            ["--listen", "tcp:notaport"],
        ):
            self.assertRaises(usage.UsageError, self.parse, *args)

    def test_counter_file_unusable(self) -> None:
        options = Options()
        self.assertRaises(
            usage.UsageError, options.parseOptions, ["--counter-file", "/proc/x/c.json"]
        )
        directory = self.mktemp()
        Path(directory).mkdir()
        self.assertRaises(
            usage.UsageError, options.parseOptions, ["--counter-file", directory]
        )


class PluginTests(SynchronousTestCase):
    def test_twistd_finds_soukets(self) -> None:
        import twisted.plugins

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIn("soukets", makers)
        self.assertTrue(issubclass(makers["soukets"].options, Options))

"""
The daemon's logs: C{--log-level} and C{--log-format}, on a real daemon.
"""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import Daemon


class LogOptionTests(SynchronousTestCase):
    def play_one_game(self, daemon: Daemon) -> None:
        alice, bob = daemon.client(), daemon.client()
        self.addCleanup(alice.close)
        self.addCleanup(bob.close)
        for client in (alice, bob):
            client.expect("welcome", "queued")
        [(_, matched)] = alice.expect("matched")
        bob.expect("matched")
        lobby = matched["channel"]
        alice.send(lobby + ';{"type":"move","move":"rock"}')
        bob.send(lobby + ';{"type":"move","move":"rock"}')
        alice.expect("round", "moved", "moved", "result", "game_over", "closed")

    def test_json(self) -> None:
        """
        With --log-format json every line is one JSON event, with its
        level, namespace and sentence; connections are at debug level and
        not shown at the default info.
        """
        daemon = Daemon(self.mktemp(), "--log-format", "json")
        self.play_one_game(daemon)
        daemon.wait_for("game over")
        self.assertEqual(daemon.stop(), 0)
        events = [json.loads(line) for line in daemon.output.splitlines()]
        texts = [e["text"] for e in events]
        self.assertTrue(any(t.startswith("listening on 127.0.0.1:") for t in texts))
        over = [e for e in events if e["text"].startswith("game over")]
        self.assertEqual(len(over), 1)
        self.assertEqual(over[0]["log_level"]["name"], "info")
        self.assertEqual(over[0]["log_namespace"], "soukets.lobby.LobbyService")
        self.assertEqual(over[0]["reason"], "completed")
        self.assertFalse(any("connected over" in t for t in texts))

    def test_levels(self) -> None:
        daemon = Daemon(self.mktemp(), "--log-level", "debug")
        self.play_one_game(daemon)
        daemon.wait_for("connected over tcp")
        daemon.wait_for("lobby formed")
        daemon.stop()
        default = Daemon(self.mktemp())
        self.play_one_game(default)
        default.wait_for("game over")
        default.stop()
        self.assertNotIn("lobby formed", default.output)  # one line a game at info
        from tests.test_browser import free_port

        quiet = Daemon(self.mktemp(), "--log-level", "warn", port=free_port())
        self.addCleanup(quiet.stop)
        probe = quiet.client()  # the wait for the port was one connection
        probe.close()
        self.play_one_game(quiet)
        quiet.stop()
        self.assertNotIn("game over", quiet.output)
        self.assertNotIn("lobby formed", quiet.output)


class ClassicTextTests(SynchronousTestCase):
    """
    L{soukets.logs.ClassicText} writes exactly the lines of Twisted's
    C{formatEventAsClassicLogText}, only cheaper.
    """

    def events(self) -> list[dict]:
        from twisted.logger import LogLevel
        from twisted.python.failure import Failure

        try:
            1 / 0
        except ZeroDivisionError:
            failure = Failure()
        base = {"log_time": 1_790_000_000.25, "log_namespace": "soukets.lobby.LobbyService",
                "log_level": LogLevel.info}
        return [
            {**base, "log_format": "{record}", "record": "game over (completed): rps a b"},
            {**base, "log_time": 1_790_000_000.75, "log_format": "same second {x}", "x": 1},
            {**base, "log_time": 1_790_000_001.0, "log_format": "next second"},
            {**base, "log_format": "two\nlines {x}", "x": "and\nthree"},
            {**base, "log_level": LogLevel.warn, "log_format": "a warning"},
            {**base, "log_namespace": "other", "log_format": "elsewhere"},
            {**base, "log_system": "-", "log_format": "twistd's own"},
            {**base, "log_format": "failed", "log_failure": failure},
            {"log_format": "no time, no namespace, no level"},
            {**base, "log_format": "{missing}"},
            {**base, "log_format": "{x!r} {x:>5} {y[0]} {y[1].real} {{braces}}", "x": "a", "y": [3, 4j]},
            {**base, "log_format": "called {f()}", "f": lambda: "back"},
            {**base, "log_format": "{x:bad}", "x": 1},
            {**base, "log_format": b"bytes {x}", "x": 1},
            {**base, "log_format": None},
            {**base},
        ]

    def test_same_lines_as_twisted(self) -> None:
        from twisted.logger import formatEventAsClassicLogText

        from soukets.logs import ClassicText

        classic = ClassicText()
        for event in self.events():
            self.assertEqual(classic(event), formatEventAsClassicLogText(event), event)

    def test_enabled_follows_the_daemon_level(self) -> None:
        """
        L{soukets.logs.enabled} says whether the level the daemon's
        observer was made with keeps an event, so that frequent debug
        events are not even emitted at info.
        """
        from twisted.logger import LogLevel

        from soukets import logs

        self.addCleanup(setattr, logs, "_lowest", logs._lowest)
        logs.make_observer("info", "text")
        self.assertFalse(logs.enabled(LogLevel.debug))
        self.assertTrue(logs.enabled(LogLevel.info))
        logs.make_observer("debug", "text")
        self.assertTrue(logs.enabled(LogLevel.debug))
        logs.make_observer("error", "text")
        self.assertFalse(logs.enabled(LogLevel.warn))
        self.assertTrue(logs.enabled(LogLevel.critical))


class LevelFilterTests(SynchronousTestCase):
    def test_same_as_twisted_filter(self) -> None:
        """
        L{soukets.logs.LevelFilter} passes on exactly the events that
        Twisted's C{FilteringLogObserver} with a C{LogLevelFilterPredicate}
        of the same default level does.
        """
        from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate

        from soukets.logs import LevelFilter

        events = [{"log_format": "x"}, {"log_level": LogLevel.error},
                  {"log_level": LogLevel.error, "log_namespace": ""}]
        for level in LogLevel.iterconstants():
            events.append({"log_level": level, "log_namespace": "soukets.lobby"})
        for lowest in LogLevel.iterconstants():
            ours: list[dict] = []
            theirs: list[dict] = []
            twisted = FilteringLogObserver(
                theirs.append, [LogLevelFilterPredicate(defaultLogLevel=lowest)])
            mine = LevelFilter(ours.append, lowest)
            for event in events:
                mine(dict(event))
                twisted(dict(event))
            self.assertEqual(ours, theirs, lowest)
            self.assertTrue(ours)


class JsonFileTests(SynchronousTestCase):
    def event(self, level_name: str = "info", text: str = "a game over") -> dict:
        from twisted.logger import LogLevel

        return {"log_format": text, "log_level": LogLevel.levelWithName(level_name),
                "log_namespace": "soukets.lobby", "log_time": 1_790_000_000.0}

    def test_json_lines_and_their_file_reopened(self) -> None:
        """
        With --log-format json, each line is the event's JSON with its
        sentence; the file is found for reopening after a rotation.
        """
        from soukets import logs

        self.addCleanup(setattr, logs, "_lowest", logs._lowest)
        path = self.mktemp()
        observer = logs.make_observer("info", "json", {"logfile": path, "nodaemon": False})
        observer(self.event(text="game {n} over") | {"n": 7})
        observer(self.event("debug", "not kept"))
        [line] = open(path).read().splitlines()
        self.assertEqual(json.loads(line)["text"], "game 7 over")
        [logfile] = logs.log_files(observer)
        self.assertEqual(logfile.path, os.path.abspath(path))

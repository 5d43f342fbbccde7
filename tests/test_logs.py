"""
The daemon's logs: C{--log-level} and C{--log-format}, on a real daemon.
"""

from __future__ import annotations

import json

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

"""
End-to-end tests: the real daemon in a subprocess, on a loopback port,
driven over real sockets with CRLF lines as telnet sends them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import CHECKOUT, Daemon, DaemonTestCase, environment


class GameTests(DaemonTestCase):
    def test_whole_game(self) -> None:
        """
        Two telnet-like clients are queued, matched, play, and both get the
        result, game_over and closed; then they may queue again.
        """
        daemon = self.start()
        alice, alice_id = self.connect(daemon)
        bob, bob_id = self.connect(daemon)
        [(_, matched)] = alice.expect("matched")
        channel = matched["channel"]
        self.assertEqual(matched["players"], [alice_id, bob_id])
        self.assertEqual(bob.expect("matched")[0][1]["channel"], channel)
        for client in (alice, bob):
            [(on, round_)] = client.expect("round")
            self.assertEqual((on, round_["round"], round_["timeout"]), (channel, 1, 10.0))
        alice.send(channel + ';{"type":"move","move":"rock"}')
        bob.send(channel + ';{"type":"move","move":"scissors"}')
        for client in (alice, bob):
            frames = client.expect("moved", "moved", "result", "game_over", "closed")
            result, over = frames[2][1], frames[3][1]
            self.assertEqual(result["moves"], {alice_id: "rock", bob_id: "scissors"})
            self.assertEqual(result["winners"], [alice_id])
            self.assertEqual(over["reason"], "completed")
            self.assertEqual(over["scores"], {alice_id: 1, bob_id: 0})
            self.assertEqual(over["winners"], [alice_id])
        alice.send(';{"type":"queue","id":1}')
        self.assertEqual(alice.read()[1], {"type": "queued", "waiting": 1, "lobby_size": 2, "id": 1})
        daemon.wait_for("game over \\(completed\\)")

    def test_timed_out_round(self) -> None:
        daemon = self.start("--move-timeout", "0.5")
        alice, alice_id = self.connect(daemon)
        bob, bob_id = self.connect(daemon)
        channel = alice.expect("matched", "round")[0][1]["channel"]
        bob.expect("matched", "round")
        started = time.monotonic()
        bob.send(channel + ';{"type":"move","move":"paper"}')
        frames = alice.expect("moved", "result", "game_over", "closed")
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        result = frames[1][1]
        self.assertEqual(result["moves"], {alice_id: None, bob_id: "paper"})
        self.assertEqual(result["timed_out"], [alice_id])
        self.assertEqual(result["winners"], [bob_id])

    def test_player_disconnects(self) -> None:
        daemon = self.start("--seat-hold", "0")
        alice, alice_id = self.connect(daemon)
        bob, bob_id = self.connect(daemon)
        alice.expect("matched", "round")
        bob.expect("matched", "round")
        alice.close()
        frames = bob.expect("left", "game_over", "closed")
        self.assertEqual(frames[0][1]["player"], alice_id)
        self.assertEqual(frames[1][1]["reason"], "player_left")
        self.assertEqual(frames[1][1]["winners"], [bob_id])


class ChannelTests(DaemonTestCase):
    def test_pubsub_three_clients(self) -> None:
        daemon = self.start("--no-auto-queue")
        (a, a_id), (b, _), (c, _) = (self.connect(daemon, queued=False) for _ in range(3))
        a.send('news;{"type":"subscribe","id":1}')
        self.assertEqual(a.read(), ("news", {"type": "subscribed", "members": 1, "id": 1}))
        b.send('news;{"type":"subscribe"}')
        self.assertEqual(b.read(), ("news", {"type": "subscribed", "members": 2}))
        for n in range(3):
            c.send('news;{"type":"publish","data":{"n":%d}}' % n)
        self.assertEqual([a.read()[1]["data"] for _ in range(3)], [{"n": 0}, {"n": 1}, {"n": 2}])
        a.send('news;{"type":"publish","data":"from a","id":"p"}')
        self.assertEqual(a.read(), ("news", {"type": "published", "receivers": 1, "id": "p"}))
        got = [b.read()[1] for _ in range(4)]
        self.assertEqual([m["data"] for m in got], [{"n": 0}, {"n": 1}, {"n": 2}, "from a"])
        self.assertEqual(got[3]["from"], a_id)
        c.send(';{"type":"ping"}')
        self.assertEqual(c.read()[1], {"type": "pong"})  # the publisher got none of it

    def test_bad_line_then_ping(self) -> None:
        daemon = self.start("--no-auto-queue", "--max-line", "1024")
        client, _ = self.connect(daemon, queued=False)
        client.send("hello")
        channel, error = client.read()
        self.assertEqual((channel, error["code"]), ("", "bad_frame"))
        self.assertIn(';{"type":"ping"}', error["message"])
        client.send_raw(b"\xff\xfb\x18\r\n")  # telnet negotiation
        self.assertEqual(client.read()[1]["code"], "bad_frame")
        client.send("x" * 5000)
        self.assertEqual(client.read()[1]["code"], "line_too_long")
        client.send(';{"type":"ping","id":2}')
        self.assertEqual(client.read(), ("", {"type": "pong", "id": 2}))


class ServerFullTests(DaemonTestCase):
    def test_server_full(self) -> None:
        daemon = self.start("--max-clients", "2")
        first, _ = self.connect(daemon)
        self.connect(daemon)
        third = daemon.client()
        self.addCleanup(third.close)
        channel, error = third.read()
        self.assertEqual((channel, error["type"], error["code"]), ("", "error", "server_full"))
        self.assertTrue(third.closed())
        first.close()
        # Its place is given back once the server has seen it go.
        deadline = time.monotonic() + 10
        while True:
            again = daemon.client()
            self.addCleanup(again.close)
            body = again.read()[1]
            if body["type"] == "welcome" or time.monotonic() > deadline:
                break
        self.assertEqual(body["type"], "welcome")


class ShutdownTests(DaemonTestCase):
    def test_sigterm(self) -> None:
        """
        SIGTERM ends running games with game_over (shutdown), says bye to
        every client, closes them and exits 0.
        """
        daemon = self.start()
        alice, _ = self.connect(daemon)
        bob, _ = self.connect(daemon)
        waiting, _ = self.connect(daemon)
        alice.expect("matched", "round")
        started = time.monotonic()
        self.assertEqual(daemon.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - started, 5)
        frames = alice.expect("game_over", "closed", "bye")
        self.assertEqual(frames[0][1]["reason"], "shutdown")
        self.assertEqual(frames[0][1]["winners"], [])
        self.assertEqual(frames[2], ("", {"type": "bye", "reason": "shutdown"}))
        self.assertEqual(waiting.expect("bye")[0][1]["reason"], "shutdown")
        self.assertTrue(alice.closed(5))


class CommandLineTests(SynchronousTestCase):
    def run_command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "soukets", *args],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=60,
        )

    def test_bad_values_refused(self) -> None:
        """
        Each bad value exits non-zero with a one-line reason, before anything
        listens.
        """
        counter = ["--counter-file", self.mktemp() + "/c.json"]
        for args, reason in [
            (["--taille-lobby", "1"], "at least 2"),
            (["--lobby-size", "x"], "whole number"),
            (["--move-timeout", "-1"], "positive"),
            (["--game", "chess"], "not a registered game"),
            (["--listen", "bogus:1234"], "not a usable endpoint"),
            (["--counter-file", "/proc/soukets/c.json"], "counter-file"),
            (["--web", "nonsense:1"], "--web"),
            (["--web-origin", "example.org"], "not an origin"),
            (["--log-level", "loud"], "--log-level"),
        ]:
            done = self.run_command(*counter, *args)
            self.assertNotEqual(done.returncode, 0, args)
            said = (done.stderr + done.stdout).strip().splitlines()
            self.assertEqual(len(said), 1, said)  # one line, not the usage
            self.assertTrue(said[0].startswith("soukets: "), said)
            self.assertIn(reason, said[0], args)

    def test_help_documents_every_option(self) -> None:
        done = self.run_command("--help")
        self.assertEqual(done.returncode, 0)
        for option in (
            "--listen", "--taille-lobby", "--lobby-size", "--max-clients",
            "--move-timeout", "--rounds", "--game", "--no-auto-queue",
            "--counter-file", "--max-line", "--max-buffer", "--max-subscriptions",
            "--max-rate", "--rate-burst", "--idle-timeout", "--web", "--no-web",
            "--web-origin", "--web-ping", "--log-level", "--log-format",
        ):
            self.assertIn(option, done.stdout)
        for line in done.stdout.splitlines():
            self.assertNotIn("  ", line[28:].rstrip(), line)  # no stray spaces
        self.assertNotIn("..", done.stdout)
        self.assertNotIn("PROTOCOL.md", done.stdout)

    def test_port_taken(self) -> None:
        """
        A daemon that cannot listen (a taken port, lines or web; a port out
        of range) exits non-zero, saying why in one line.
        """
        first = Daemon(self.mktemp(), "--web", "tcp:0:interface=127.0.0.1")
        self.addCleanup(first.stop)
        for args, said in (
            (["--listen", f"tcp:{first.port}:interface=127.0.0.1", "--no-web"],
             f"soukets: --listen tcp:{first.port}:interface=127.0.0.1: cannot listen on port {first.port}: Address already in use"),
            (["--listen", "tcp:0:interface=127.0.0.1", "--web", f"tcp:{first.web_port}:interface=127.0.0.1"],
             f"soukets: --web tcp:{first.web_port}:interface=127.0.0.1: cannot listen on port {first.web_port}: Address already in use"),
            (["--listen", "tcp:99999", "--no-web"], "soukets: --listen tcp:99999: cannot listen: OverflowError"),
        ):
            done = self.run_command(*args, "--counter-file", self.mktemp() + "/c.json")
            self.assertNotEqual(done.returncode, 0)
            output = done.stdout + done.stderr
            self.assertIn(said, output)
            self.assertNotIn("Traceback", output)

    def test_version(self) -> None:
        from soukets import __version__

        done = self.run_command("--version")
        self.assertEqual((done.returncode, done.stdout.strip()), (0, f"soukets {__version__}"))


class LaunchersTests(DaemonTestCase):
    """
    The daemon starts the same way through twistd, scripts/soukets and the
    console script.
    """

    def play_ping(self, daemon: Daemon) -> None:
        client, _ = self.connect(daemon)
        client.send(';{"type":"ping"}')
        self.assertEqual(client.read()[1], {"type": "pong"})

    def test_twistd(self) -> None:
        # (On twistd's default reactor, unless told otherwise: below.)
        twistd = str(Path(sys.executable).parent / "twistd")
        daemon = self.start(command=[twistd, "-n", "--pidfile=", "soukets"])
        daemon.wait_for(r"reactor class: twisted\.internet\.epollreactor\.EPollReactor")
        self.play_ping(daemon)

    def test_twistd_on_soukets_reactor(self) -> None:
        twistd = str(Path(sys.executable).parent / "twistd")
        daemon = self.start(command=[twistd, "-n", "--pidfile=", "--reactor=soukets", "soukets"])
        daemon.wait_for(r"reactor class: soukets\.reactor\.SouketsReactor")
        self.play_ping(daemon)

    def test_script(self) -> None:
        daemon = self.start(command=[sys.executable, str(CHECKOUT / "scripts" / "soukets")])
        daemon.wait_for(r"reactor class: soukets\.reactor\.SouketsReactor")
        self.play_ping(daemon)

    def test_script_without_twisted(self) -> None:
        """
        scripts/soukets run by a Python that has no Twisted (here: without
        its site-packages) starts again with the checkout's environment, or
        says in one line how to make one.
        """
        done = subprocess.run(
            [sys.executable, "-S", str(CHECKOUT / "scripts" / "soukets"), "--version"],
            capture_output=True, text=True, timeout=60,
        )
        if (CHECKOUT / ".venv" / "bin" / "python").exists():
            self.assertEqual(done.stdout.strip().split()[0], "soukets", done.stderr)
        else:
            self.assertIn("python3 -m venv .venv", done.stderr)
        self.assertNotIn("Traceback", done.stderr)

    def test_console_script(self) -> None:
        # Installed by pip next to this Python, as README's quick start does.
        script = str(Path(sys.executable).parent / "soukets")
        daemon = self.start(command=[script])
        daemon.wait_for(r"reactor class: soukets\.reactor\.SouketsReactor")
        self.play_ping(daemon)

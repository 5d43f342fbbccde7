"""
Regression tests for the second hardening round, through real sockets
against a real daemon where the findings were seen that way: a frame that
stranded the queue, dead connections that were matched, a slowloris that
beat the idle timeout, signals that killed the daemon, and a counter file
that could hang or be forged.  (Unit-level counterparts live beside the
modules' own tests.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Protocol, ClientFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase

from soukets.counter import HostCounterService
from soukets.transports.connection import Gate
from soukets.transports.tcp import KEEPALIVE_IDLE, SouketsFactory
from soukets.server import Server, ServerSettings

from tests.daemon import Client, Daemon, DaemonTestCase
from tests.support import Harness

LONE = '"\\ud800"'  # a lone surrogate, as a JSON escape on the wire


class DaemonCase(DaemonTestCase):
    def connect(self, daemon: Daemon, queued: bool = False) -> tuple[Client, str]:
        # These tests read the queue's frames themselves, when there are any.
        return super().connect(daemon, queued)


class LoneSurrogateTests(DaemonCase):
    def test_queue_not_stranded(self) -> None:
        """
        A lone surrogate in a queue frame's id is bad_json for its sender
        (who stays connected), and the players already waiting stay queued
        and are matched as usual.
        """
        daemon = self.start("--no-auto-queue")
        alice, alice_id = self.connect(daemon)
        alice.send(';{"type":"queue"}')
        alice.expect("queued")
        mallory, _ = self.connect(daemon)
        mallory.send(';{"type":"queue","id":%s}' % LONE)
        [(_, error)] = mallory.expect("error")
        self.assertEqual(error["code"], "bad_json")
        self.assertNotIn("id", error)
        mallory.send(';{"type":"stats"}')
        [(_, stats)] = mallory.expect("stats")
        self.assertEqual(stats["queued"], 1)
        bob, bob_id = self.connect(daemon)
        bob.send(';{"type":"queue"}')
        bob.expect("queued", "matched")
        [(_, matched)] = alice.expect("matched")
        self.assertEqual(matched["players"], [alice_id, bob_id])
        self.assertNotIn("Unhandled", daemon.output)

    def test_every_echo(self) -> None:
        """
        A lone surrogate in any echoed field is one bad_json error; the
        connection answers the next frame.
        """
        daemon = self.start("--no-auto-queue")
        client, _ = self.connect(daemon)
        listener, _ = self.connect(daemon)
        listener.send('room;{"type":"subscribe"}')
        listener.expect("subscribed")
        for line in (
            ';{"type":"ping","id":%s}' % LONE,
            ';{"type":"stats","id":%s}' % LONE,
            ';{"type":"hello","name":%s}' % LONE,
            ';{"type":%s}' % LONE,
            'room;{"type":"publish","data":%s,"id":1}' % LONE,
            'room;{"type":"publish","data":%s}' % LONE,
            'room;{"type":"publish","data":{"k":[%s]}}' % LONE,
            'room;{"type":"subscribe","id":%s}' % LONE,
        ):
            client.send(line)
            [(_, error)] = client.expect("error")
            self.assertEqual(error["code"], "bad_json", line)
        client.send(';{"type":"ping","id":"\\ud83d\\ude00"}')
        self.assertEqual(client.expect("pong")[0][1]["id"], "\U0001F600")
        client.send('room;{"type":"publish","data":"ok"}')
        self.assertEqual(listener.expect("message")[0][1]["data"], "ok")
        self.assertNotIn("Unhandled", daemon.output)


class DeadConnectionTests(DaemonCase):
    def test_closed_connections_never_matched(self) -> None:
        """
        Connections that close (with a FIN or a RST) right after connecting
        are never matched with a waiting player, who is matched with the
        next live one.
        """
        daemon = self.start()
        alice, alice_id = self.connect(daemon)
        alice.expect("queued")
        for i in range(40):
            sock = socket.create_connection(("127.0.0.1", daemon.port))
            if i % 2:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            sock.close()
        alice.send(';{"type":"ping"}')
        [(_, pong)] = alice.expect("pong")
        bob, bob_id = self.connect(daemon)
        bob.expect("queued", "matched")
        [(_, matched)] = alice.expect("matched")
        self.assertEqual(matched["players"], [alice_id, bob_id])


class SlowlorisTests(DaemonCase):
    def test_trickled_line_is_silence(self) -> None:
        """
        With --idle-timeout, a client that sends a byte at a time and never
        a newline is pinged, then dropped: only whole lines are signs of
        life.
        """
        daemon = self.start("--idle-timeout", "2", "--no-auto-queue")
        client, _ = self.connect(daemon)
        started = time.monotonic()
        got = b""
        client.sock.settimeout(0.3)
        for _ in range(40):  # at most 12 s
            try:
                client.sock.sendall(b"x")
                chunk = client.sock.recv(4096)
            except socket.timeout:
                continue
            except (ConnectionError, BrokenPipeError):
                break
            if not chunk:
                break
            got += chunk
        else:
            self.fail(f"not dropped; got {got!r}")
        self.assertIn(b'{"type":"ping"}', got)
        self.assertLess(time.monotonic() - started, 10)
        daemon.wait_for("dropped: silent")


class KeepaliveTests(TestCase):
    @inlineCallbacks
    def test_socket_options(self):
        """
        Accepted sockets probe a silent peer as Redis's tcp-keepalive 300
        does: after 300 s, every 100 s, 3 times.
        """
        counter = HostCounterService(Path(self.mktemp()) / "c.json", 10)
        counter.startService()
        self.addCleanup(counter.stopService)
        factory = SouketsFactory(Gate(Server(ServerSettings(), reactor), counter))
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        welcomed: Deferred[None] = Deferred()

        class Reader(Protocol):
            def dataReceived(self, data: bytes) -> None:
                if not welcomed.called:
                    welcomed.callback(None)

        client = yield TCP4ClientEndpoint(
            reactor, "127.0.0.1", port.getHost().port
        ).connect(ClientFactory.forProtocol(Reader))
        yield welcomed
        [connection] = factory.gate.connections
        sock = connection.link.transport.getHandle()
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), KEEPALIVE_IDLE)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL), 100)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), 3)
        closed = connection.closed
        client.transport.loseConnection()
        yield closed


class SignalTests(DaemonCase):
    def in_game(self, daemon: Daemon) -> tuple[Client, Client]:
        alice, _ = self.connect(daemon)
        bob, _ = self.connect(daemon)
        for client in (alice, bob):
            client.expect("queued", "matched", "round")
        return alice, bob

    def test_graceful_stops(self) -> None:
        """
        SIGTERM, SIGINT and SIGQUIT each end the running game with
        game_over (shutdown), say bye, and exit 0 with the record removed.
        """
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            daemon = self.start()
            alice, bob = self.in_game(daemon)
            daemon.process.send_signal(sig)
            for client in (alice, bob):
                frames = client.expect("game_over", "closed", "bye")
                self.assertEqual(frames[0][1]["reason"], "shutdown")
                self.assertTrue(client.closed())
            self.assertEqual(daemon.stop(), 0, sig)
            records = json.loads(Path(daemon.counter_file).read_text())["processes"]
            self.assertEqual(records, [], sig)

    def test_survived(self) -> None:
        """
        SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM leave the daemon running, its
        game going on.
        """
        daemon = self.start()
        alice, bob = self.in_game(daemon)
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
            daemon.process.send_signal(sig)
            daemon.wait_for(f"received {sig.name}")
        self.assertIsNone(daemon.process.poll())
        alice.send(';{"type":"ping"}')
        alice.expect("pong")

    def test_reopen_log(self) -> None:
        """
        After logrotate moves twistd's log file, SIGHUP makes the daemon
        write to a new file at the same path.
        """
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        log = workdir / "soukets.log"
        daemon = self.start(
            command=[
                sys.executable, "-c",
                "import sys; from twisted.scripts.twistd import run; "
                "sys.argv[0] = 'twistd'; run()",
                "--nodaemon", "--pidfile=", "--logfile", str(log), "soukets",
            ],
            log_file=str(log),
        )
        log.rename(workdir / "soukets.log.1")
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not (log.exists() and "log file(s) reopened" in log.read_text()):
            self.assertLess(time.monotonic(), deadline, "no new log file")
            time.sleep(0.05)
        self.assertIn(str(log), log.read_text())
        self.assertNotIn("reopened", (workdir / "soukets.log.1").read_text())


class CounterFileTests(DaemonCase):
    def test_fifo(self) -> None:
        """
        The counter file replaced by a FIFO: clients are still admitted,
        stats answers, the file is rebuilt, and SIGTERM stops the daemon at
        once.
        """
        daemon = self.start("--no-auto-queue")
        first, _ = self.connect(daemon)
        os.unlink(daemon.counter_file)
        os.mkfifo(daemon.counter_file)
        second, _ = self.connect(daemon)
        second.send(';{"type":"stats"}')
        [(_, stats)] = second.expect("stats")
        self.assertEqual(stats["host_clients"], 2)
        self.assertTrue(Path(daemon.counter_file).is_file())
        daemon.wait_for("not a regular file")
        started = time.monotonic()
        self.assertEqual(daemon.stop(signal.SIGTERM, timeout=10), 0)
        self.assertLess(time.monotonic() - started, 5)

    def test_symlink_and_garbage(self) -> None:
        """
        A link planted at the counter file's path is not written through,
        and a file of 200,000 '[' is logged and rebuilt: new connections
        are welcomed, never left hanging.
        """
        daemon = self.start()
        target = Path(self.mktemp())
        target.write_text("precious")
        os.unlink(daemon.counter_file)
        os.symlink(target, daemon.counter_file)
        client, _ = self.connect(daemon)
        self.assertEqual(target.read_text(), "precious")
        Path(daemon.counter_file).write_bytes(b"[" * 200_000)
        client, _ = self.connect(daemon)
        daemon.wait_for("nested too deeply")
        records = json.loads(Path(daemon.counter_file).read_text())["processes"]
        self.assertEqual([r["clients"] for r in records], [2])

    def test_unsafe_directory_refused(self) -> None:
        """
        A counter directory others can write to is refused at start-up in
        one line.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        os.chmod(directory, 0o777)
        import subprocess

        from tests.daemon import environment

        result = subprocess.run(
            [sys.executable, "-m", "soukets", "--counter-file", str(directory / "c.json")],
            capture_output=True, text=True, env=environment(), timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("writable by group or others", result.stderr + result.stdout)


class SmallerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = Harness(ServerSettings(auto_queue=False))
        self.client = self.harness.connect()

    def send(self, line: str):
        return self.harness.send(self.client, line)

    def test_long_type_quoted_short(self) -> None:
        for line in (
            ';{"type":"%s"}' % ("t" * 60_000),
            'room;{"type":"%s"}' % ("t" * 60_000),
        ):
            [(_, error)] = self.send(line)
            self.assertEqual(error["code"], "unknown_type")
            self.assertLess(len(error["message"]), 200)
            self.assertIn("\u2026", error["message"])

    def test_blank_and_lookalike_names(self) -> None:
        other = self.harness.connect()
        for name in (" ", "   ", "\u3000", other.client_id, "beef-12"):
            [(_, error)] = self.send(';{"type":"hello","name":%s}' % json.dumps(name))
            self.assertEqual(error["code"], "bad_json", name)
        [(_, hello)] = self.send(';{"type":"hello","name":" alice "}')
        self.assertEqual(hello["name"], " alice ")
        [(_, hello)] = self.send(';{"type":"hello","name":%s}' % json.dumps(self.client.client_id))
        self.assertEqual(hello["type"], "hello")

    def test_lobby_names_reserved(self) -> None:
        """
        Lobby ids have a reserved form: nobody but the players may use one
        before, during or after its game, and an unknown one answers like a
        live one (no oracle).
        """
        alice, bob = self.harness.connect(), self.harness.connect()
        for player in (alice, bob):
            self.harness.send(player, ';{"type":"queue"}')
        matched = [b for _, b in self.harness.frames(alice) if b["type"] == "matched"]
        channel = matched[0]["channel"]
        self.assertTrue(channel.startswith("lobby:"))
        unknown = "lobby:" + "A" * 22
        for name in (channel, unknown):
            for line in ('%s;{"type":"subscribe"}', '%s;{"type":"publish","data":1}'):
                [(_, error)] = self.send(line % name)
                self.assertEqual(error["code"], "forbidden")
                self.assertNotIn(channel, error["message"].replace(name, ""))
        self.harness.server.lobbies.stopService()  # the game ends
        [(_, error)] = self.send('%s;{"type":"subscribe"}' % channel)
        self.assertEqual(error["code"], "forbidden")


# Any JSON string, lone surrogates included, as the wire would carry it.
WIRE_STRINGS = st.one_of(
    st.text(max_size=20).map(json.dumps),
    st.integers(0xD800, 0xDFFF).map(lambda c: '"\\u%04x"' % c),
    st.tuples(st.text(max_size=5), st.integers(0xD800, 0xDFFF)).map(
        lambda t: json.dumps(t[0])[:-1] + "\\u%04x" % t[1] + '"'
    ),
)
TEMPLATES = [
    ';{"type":"ping","id":%s}',
    ';{"type":"stats","id":%s}',
    ';{"type":"queue","id":%s}',
    ';{"type":"hello","name":%s}',
    ';{"type":%s}',
    'room;{"type":%s}',
    'room;{"type":"subscribe","id":%s}',
    'room;{"type":"publish","data":%s}',
    'room;{"type":"publish","data":[%s],"id":%s}',
    'room;{"type":"unsubscribe","id":%s}',
]


class EchoedFieldProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(TEMPLATES), WIRE_STRINGS, WIRE_STRINGS), max_size=8))
    def test_any_string_in_any_echoed_field(self, frames) -> None:
        """
        Whatever string a client puts in a field the server echoes, each
        frame gets its answer or one error, every byte sent is UTF-8, the
        waiting players stay queued, and the connection still answers.
        """
        harness = Harness(ServerSettings(auto_queue=False, lobby_size=3))
        waiting = [harness.connect(), harness.connect()]
        for player in waiting:
            harness.send(player, ';{"type":"queue"}')
        listener = harness.connect()
        harness.send(listener, 'room;{"type":"subscribe"}')
        client = harness.connect()
        for template, first, second in frames:
            line = template % ((first, second) if template.count("%s") == 2 else (first,))
            client.data_received(line.encode("utf-8") + b"\n")
            raw = harness.take(client)
            raw.decode("utf-8")  # every byte sent is text
            self.assertEqual(harness.disconnected, [])
            if harness.server.lobbies.waiting == 0:
                # The client itself queued and formed a lobby: fine, but
                # never with the waiting players lost.
                self.assertTrue(harness.server.lobbies.lobbies)
            elif client not in harness.server.lobbies._queue:
                self.assertEqual(harness.server.lobbies.waiting, 2)
        for session in (*waiting, listener):
            harness.take(session).decode("utf-8")
        client.data_received(b';{"type":"ping"}\n')
        self.assertIn(b'"pong"', harness.take(client))


class BrokenGameTests(SynchronousTestCase):
    """
    A bug in a game costs that game, never a player's connection.
    """

    def harness(self, fail_in: str) -> Harness:
        from soukets.games.rps import RockPaperScissors

        class Broken(RockPaperScissors):
            def start(self) -> None:
                if fail_in == "start":
                    1 / 0
                super().start()

            def received(self, player, frame) -> None:
                if fail_in == "received":
                    1 / 0
                super().received(player, frame)

        harness = Harness()
        harness.server = Server(harness.settings, harness.clock, game_factory=Broken)
        return harness

    def test_received_raises(self) -> None:
        harness = self.harness("received")
        events: list[dict] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        alice, bob = harness.connect(), harness.connect()
        channel = [b for _, b in harness.frames(alice) if b["type"] == "matched"][0]["channel"]
        harness.frames(bob)
        frames = harness.send(alice, channel + ';{"type":"move","move":"rock","id":7}')
        self.assertEqual(
            [(b["type"], b.get("reason") or b.get("code")) for _, b in frames],
            [("game_over", "internal_error"), ("closed", None), ("error", "internal_error")],
        )
        self.assertEqual(frames[-1][1]["id"], 7)
        self.assertEqual([b["type"] for _, b in harness.frames(bob)], ["game_over", "closed"])
        self.assertEqual(harness.disconnected, [])
        self.assertEqual(harness.send(alice, ';{"type":"ping"}'), [("", {"type": "pong"})])
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual([e.get("game") for e in failures], ["rps"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_start_raises(self) -> None:
        harness = self.harness("start")
        alice, bob = harness.connect(), harness.connect()
        types = [b["type"] for _, b in harness.frames(alice)]
        self.assertEqual(types[-2:], ["game_over", "closed"])
        self.assertEqual(harness.server.lobbies.lobbies, {})
        self.assertEqual(harness.send(bob, ';{"type":"queue"}')[0][1]["type"], "queued")
        self.flushLoggedErrors(ZeroDivisionError)


class FormationTests(SynchronousTestCase):
    def test_dead_partner_found_at_formation(self) -> None:
        """
        A lobby never forms around a player whose connection is already
        closed: the live players keep their places at the front.
        """
        from twisted.internet.task import Clock

        from soukets.games.rps import RockPaperScissors
        from soukets.hub import ChannelHub
        from soukets.lobby import LobbyService
        from soukets.games.base import GameSettings
        from tests.support import Recorder

        lobbies = LobbyService(ChannelHub(), "rps", RockPaperScissors, 3, GameSettings(), Clock())
        alice, dead, bob, carol = (Recorder(n) for n in ("a-1", "d-2", "b-3", "c-4"))
        lobbies.enqueue(alice)
        lobbies.enqueue(dead)
        dead.connected = False  # closed, not yet reported
        lobbies.enqueue(bob)
        self.assertEqual(lobbies.lobbies, {})
        self.assertEqual(list(lobbies._queue._waiting), [alice, bob])
        lobbies.enqueue(carol)
        [lobby] = lobbies.lobbies.values()
        self.assertEqual(lobby.players, ("a-1", "b-3", "c-4"))
        self.assertNotIn("matched", dead.received.take().decode())

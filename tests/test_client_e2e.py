"""
End-to-end tests of the terminal client: real client processes (in script
mode, and on a real pseudo-terminal) against a real daemon.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import Daemon, environment

TIMEOUT = 20.0


def client_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "soukets.client", *args]


class ScriptClient:
    """
    A client process in --script mode; its output is read line by line.
    """

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            client_command("--script", *args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=environment(),
        )
        self.lines: list[str] = []
        self._buffer = b""
        self._seen = 0  # lines wait_for has looked at

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def _read_lines(self, deadline: float) -> bool:
        """
        Read what the client printed, up to C{deadline}; return False at
        end of output.
        """
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        if select.select([fd], [], [], max(0.0, min(0.5, deadline - time.monotonic())))[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            self.lines.extend(line.decode() for line in lines)
        return True

    def wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            while self._seen < len(self.lines):
                line = self.lines[self._seen]
                self._seen += 1
                if re.search(pattern, line):
                    return line
            if time.monotonic() > deadline or not self._read_lines(deadline):
                raise AssertionError(f"{pattern!r} not printed; got {self.lines}")

    def finish(self) -> tuple[int, list[str]]:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and self._read_lines(deadline):
            pass
        return self.process.wait(TIMEOUT), self.lines

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ScriptModeTests(SynchronousTestCase):
    def start_client(self, *args: str) -> ScriptClient:
        client = ScriptClient(*args)
        self.addCleanup(client.kill)
        return client

    def test_two_clients_play(self) -> None:
        daemon = Daemon(self.mktemp())
        self.addCleanup(daemon.stop)
        address = f"127.0.0.1:{daemon.port}"
        alice = self.start_client(address, "--name", "alice")
        alice.wait_for("waiting for 1 more player")
        bob = self.start_client("--name", "bob", address)
        alice.type("r")
        bob.type("scissors")
        code, lines = alice.finish()
        self.assertEqual(code, 0, lines)
        # Named as people, even though bob was matched as he connected.
        self.assertTrue(any(re.match(r"matched in lobby .{4}… with bob$", line) for line in lines), lines)
        self.assertFalse(any(" is bob)" in line for line in lines), lines)
        self.assertIn("round 1: bob played scissors — you win", lines)
        self.assertIn("game over — you won: alice 1, bob 0. Play again? [y/n]", lines)
        code, lines = bob.finish()
        self.assertEqual(code, 0, lines)
        self.assertTrue(lines[1].startswith("matched in lobby") and lines[1].endswith("with alice"), lines)
        self.assertIn("round 1: alice played rock — you lose", lines)

    def test_channels(self) -> None:
        daemon = Daemon(self.mktemp(), "--no-auto-queue")
        self.addCleanup(daemon.stop)
        address = f"127.0.0.1:{daemon.port}"
        listener = self.start_client(address)
        listener.wait_for("connected to")
        listener.type("/unqueue")
        listener.wait_for("you left the queue")
        listener.type("/sub news")
        listener.wait_for(r"subscribed to news \(1 member\)")
        talker = self.start_client(address, "--json")
        talker.wait_for("connected to")
        talker.type("/unqueue")
        talker.wait_for('^;{"type":"unqueued"}$')
        talker.type("/pub news extra extra")
        listener.wait_for(r"^\[news\] \S+: extra extra$")
        talker.type("/ping")
        talker.wait_for(r"^pong in \d+\.\d ms$")
        talker.type("/quit")
        self.assertEqual(talker.finish()[0], 0)

    def test_connection_lost(self) -> None:
        daemon = Daemon(self.mktemp())
        client = self.start_client(f"127.0.0.1:{daemon.port}")
        client.wait_for("waiting for 1 more player")
        daemon.stop(signal.SIGTERM)
        client.wait_for("the server is going away")
        # A graceful shutdown is a clean end: the reason, and exit 0.
        self.assertEqual(client.process.wait(TIMEOUT), 0)
        self.assertIn("the server closed the connection (shutdown)", client.finish()[1])

    def test_connection_really_lost(self) -> None:
        daemon = Daemon(self.mktemp())
        client = self.start_client(f"127.0.0.1:{daemon.port}")
        client.wait_for("waiting for 1 more player")
        daemon.stop(signal.SIGKILL)
        self.assertEqual(client.process.wait(TIMEOUT), 1)
        self.assertIn("connection lost", client.finish()[1])

    def test_cannot_connect(self) -> None:
        daemon = Daemon(self.mktemp())
        port = daemon.port
        daemon.stop()
        client = self.start_client(f"127.0.0.1:{port}")
        code, lines = client.finish()
        self.assertEqual(code, 1)
        self.assertEqual(
            f"nothing is listening on 127.0.0.1:{port} — is the server running?", lines[0]
        )

    def test_local(self) -> None:
        client = self.start_client("--local", "--name", "alice", "--move-timeout", "2")
        client.type("p")
        code, lines = client.finish()
        self.assertEqual(code, 0, lines)
        self.assertRegex(lines[-2], r"^round 1: computer played \w+ — (you win|you lose|draw)$")
        self.assertTrue(lines[-1].startswith("game over — "))


class PseudoTerminalTests(SynchronousTestCase):
    """
    The interactive client on a real pseudo-terminal, as a person uses it.
    """

    def test_type_a_move(self) -> None:
        daemon = Daemon(self.mktemp())
        self.addCleanup(daemon.stop)
        address = f"127.0.0.1:{daemon.port}"
        pid, fd = pty.fork()
        if pid == 0:  # the child: the client, on the terminal
            os.execve(sys.executable, client_command(address, "--name", "alice"), environment())
        self.addCleanup(os.close, fd)
        screen = b""

        def read_until(pattern: bytes) -> None:
            nonlocal screen
            deadline = time.monotonic() + TIMEOUT
            while not re.search(pattern, screen):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{pattern!r} not on screen: {screen!r}")
                if select.select([fd], [], [], 0.5)[0]:
                    try:
                        screen += os.read(fd, 4096)
                    except OSError:
                        break

        read_until(rb"waiting for 1 more player")
        opponent = ScriptClient(address, "--name", "bob")
        self.addCleanup(opponent.kill)
        read_until(rb"\[round 1, \d+ s \xe2\x80\x94 r/p/s\] > ")
        os.write(fd, b"pa")
        read_until(rb"> pa$")  # what is typed shows at the prompt
        os.write(fd, b"per\r")
        opponent.type("rock")
        read_until(rb"round 1: bob played rock \xe2\x80\x94 you win")
        read_until(rb"Play again\? \[y/n\]")
        os.write(fd, b"\x03")  # Ctrl-C
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        opponent.finish()


class EndOfInputTests(SynchronousTestCase):
    def test_stats_then_exit(self) -> None:
        """
        A script that asks for stats and ends gets its answer and exits 0,
        rather than waiting in the queue forever.
        """
        daemon = Daemon(self.mktemp())
        self.addCleanup(daemon.stop)
        client = ScriptClient(f"127.0.0.1:{daemon.port}")
        client.type("/stats")
        code, lines = client.finish()
        self.assertEqual(code, 0, lines)
        self.assertTrue(any(line.startswith("server: 1 client here") for line in lines), lines)

    def test_moves_typed_ahead_all_played(self) -> None:
        """
        printf 'r\\np\\ns\\n' | soukets-client --local --rounds 3 plays the
        three moves, one a round, none timing out.
        """
        client = ScriptClient("--local", "--rounds", "3", "--move-timeout", "5")
        for key in "rps":
            client.type(key)
        code, lines = client.finish()
        self.assertEqual(code, 0, lines)
        played = [line for line in lines if line.startswith("round ") and "computer played" in line]
        self.assertEqual(len(played), 3, lines)
        self.assertFalse(any("already played" in line or "too late" in line for line in lines), lines)


class CuttableProxy:
    """
    A loopback TCP relay in front of a daemon whose current connections the
    test can cut with a RST (as a lost network would), while it keeps
    accepting new ones.
    """

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.close()
            except OSError:
                pass

    def cut(self) -> None:
        import socket
        import struct

        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # (shutdown wakes the relay thread blocked on it)
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        self.cut()


class ClientResumeTests(SynchronousTestCase):
    def test_reconnects_and_resumes(self) -> None:
        """
        A client whose connection is lost mid-game reconnects by itself,
        takes its seat back and finishes the game.
        """
        daemon = Daemon(self.mktemp(), "--hurry", "0")
        self.addCleanup(daemon.stop)
        proxy = CuttableProxy(daemon.port)
        self.addCleanup(proxy.close)
        client = ScriptClient("--name", "alice", f"127.0.0.1:{proxy.port}")
        self.addCleanup(client.process.kill)
        client.wait_for("waiting for 1 more player")
        bob = daemon.client()
        self.addCleanup(bob.close)
        bob.expect("welcome", "queued")
        [(_, matched)] = bob.expect("matched")
        bob.expect("round")
        client.wait_for("round 1")
        proxy.cut()
        client.wait_for("reconnecting")
        client.wait_for("back in the game")
        client.type("r")
        bob.send(matched["channel"] + ';{"type":"move","move":"scissors"}')
        client.wait_for("you win")
        client.type("n")
        code, lines = client.finish()
        self.assertEqual(code, 0, lines)

"""
Real soukets daemons in subprocesses, and clients talking to them over real
loopback sockets the way telnet does (CRLF lines), for end-to-end tests.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

CHECKOUT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0


def environment() -> dict[str, str]:
    """
    The environment for a daemon: the checkout's code first on the path.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(CHECKOUT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def reset_signals() -> None:
    """
    Give a child process the default handling of every signal a test sends:
    started from a shell's background job, it would inherit SIGINT ignored.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def prepare_child() -> None:
    """
    What runs in a daemon's process before it starts: file limit, signals.
    """
    raise_fd_limit()
    reset_signals()


def raise_fd_limit() -> None:
    """
    Let a process open as many files as the system allows it (up to 65536),
    for tests with a thousand connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Daemon:
    """
    A soukets daemon on a free loopback port, started with C{args}.  Its
    output is collected in L{output}.
    """

    def __init__(
        self,
        workdir: str,
        *args: str,
        counter_file: str | None = None,
        command: list[str] | None = None,
        log_file: str | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_file = log_file
        os.makedirs(workdir, exist_ok=True)
        self.counter_file = os.path.abspath(
            counter_file or os.path.join(workdir, "clients.json")
        )
        if command is None:
            command = [sys.executable, "-m", "soukets"]
        # A test daemon serves no web site unless it asks for one (on a
        # free port: --web tcp:0:interface=127.0.0.1).
        web = [] if "--web" in args or "--no-web" in args else ["--no-web"]
        self.argv = [
            *command,
            "--listen",
            f"tcp:{port or 0}:interface=127.0.0.1:backlog=4096",
            "--counter-file",
            self.counter_file,
            *web,
            *args,
        ]
        self.process = subprocess.Popen(
            self.argv,
            preexec_fn=prepare_child,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**environment(), **(env or {})},
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if port is None:
            found = self.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
            self.port = int(found.group(1))
        else:  # a daemon that may not log it: wait until it accepts
            self.port = port
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise AssertionError("the daemon never listened:\n" + self.output)
                    time.sleep(0.05)
        self.web_port: int | None = None
        if "--web" in args:
            site = self.wait_for(r"web site on https?://127\.0\.0\.1:(\d+)/")
            self.web_port = int(site.group(1))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._seen:
                self.lines.append(raw.decode("utf-8", "replace"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    @property
    def output(self) -> str:
        with self._seen:
            printed = "".join(self.lines)
        if self.log_file is not None:
            try:
                return printed + Path(self.log_file).read_text(errors="replace")
            except FileNotFoundError:
                pass
        return printed

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """
        Wait until a line of the daemon's output matches C{pattern}.
        """
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        if self.log_file is not None:
            while True:
                found = regex.search(self.output)
                if found:
                    return found
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(
                        f"{pattern!r} not seen in the daemon's log:\n" + self.output
                    )
                time.sleep(0.05)
        with self._seen:
            checked = 0
            while True:
                for line in self.lines[checked:]:
                    found = regex.search(line)
                    if found:
                        return found
                checked = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"{pattern!r} not seen in the daemon's output:\n"
                        + "".join(self.lines)
                    )
                self._seen.wait(min(remaining, 0.5))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        """
        Send C{sig}; return the exit code once the process has ended.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon did not stop within {timeout} s of "
                f"{signal.Signals(sig).name}; its output:\n{self.output}"
            )
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(5)

    def client(self) -> Client:
        """
        A new client connected to this daemon.
        """
        return Client(self.port)


class Client:
    """
    A line-oriented client on a real socket, with bounded waits.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any]]:
        """
        The next frame, as (channel, JSON object).
        """
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no frame within {timeout} s; have {self.buffer!r}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by the server; have {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        channel, _, document = line.decode("utf-8").partition(";")
        return channel, json.loads(document)

    def expect(self, *types: str) -> list[tuple[str, dict[str, Any]]]:
        """
        Read frames of exactly these types, in this order.
        """
        frames = [self.read() for _ in types]
        got = tuple(body["type"] for _, body in frames)
        if got != types:
            raise AssertionError(f"expected {types}, got {frames}")
        return frames

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """
        Whether the server closes the connection (after any frames left).
        """
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


class DaemonTestCase(SynchronousTestCase):
    """
    Tests of real daemons: each one started is stopped by its PID when the
    test ends, and so is each client closed.
    """

    def start(self, *args: str, **kwargs: Any) -> Daemon:
        daemon = Daemon(self.mktemp(), *args, **kwargs)
        self.addCleanup(daemon.stop)
        return daemon

    def connect(self, daemon: Daemon, queued: bool = True) -> tuple[Client, str]:
        client = daemon.client()
        self.addCleanup(client.close)
        [(_, welcome)] = client.expect("welcome")
        if queued:
            client.expect("queued")
        return client, welcome["client"]

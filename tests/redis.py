"""
A real C{redis-server} (Debian's package) on a free loopback port, for the
tests of the Redis engine: started and stopped by its PID, restartable on
the same port, and asked things with hiredis over a plain socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from typing import Any

import hiredis
import txredisapi

TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """
    One C{redis-server} process, in memory only (nothing saved), on
    127.0.0.1.  C{args} are more of its options (C{--requirepass ...}).
    """

    def __init__(
        self, workdir: str, *args: str, port: int | None = None, tls: tuple[str, str] | None = None
    ) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise AssertionError(
                "redis-server is not installed: scripts/install-test-deps installs it"
            )
        self.executable = executable
        os.makedirs(workdir, exist_ok=True)
        self.workdir = os.path.abspath(workdir)
        self.args = args
        self.port = port or free_port()
        self.tls = tls  # (certificate, key): the port speaks TLS only
        self.process: subprocess.Popen[bytes] | None = None
        self.password: str | None = None
        if "--requirepass" in args:
            self.password = args[args.index("--requirepass") + 1]
        self.start()

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.tls is None:
            ports = ["--port", str(self.port)]
        else:
            cert, key = self.tls
            ports = [
                "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert,
                "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
            ]
        self.process = subprocess.Popen(
            [
                self.executable, *ports, "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.workdir, *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self.call("PING")
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()  # (stopped by its PID even when it failed to start)
                    raise AssertionError(f"redis-server on {self.port} never answered")
                time.sleep(0.05)

    def stop(self) -> None:
        """
        Kill it (SIGKILL, by PID): what a crash or an outage looks like.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)

    def call(self, *args: Any, db: int = 0) -> Any:
        """
        One command, over a new connection; its reply.
        """
        packer = txredisapi.BaseRedisProtocol()
        reader = hiredis.Reader()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as plain:
            sock = plain
            if self.tls is not None:
                context = ssl.create_default_context(cafile=self.tls[0])
                sock = context.wrap_socket(plain, server_hostname="127.0.0.1")
            commands = []
            if self.password is not None:
                commands.append(("AUTH", self.password))
            if db:
                commands.append(("SELECT", db))
            commands.append(args)
            for command in commands:
                sock.sendall(packer._build_command(*command))
                while (reply := reader.gets()) is False:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("redis closed the connection")
                    reader.feed(data)
                if isinstance(reply, hiredis.ReplyError):
                    raise AssertionError(f"{command[0]}: {reply}")
            return reply


class RedisConnection:
    """
    One lasting blocking connection to a L{RedisServer} (for tests that
    call it from several threads at once, each with its own).
    """

    def __init__(self, server: RedisServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        self.packer = txredisapi.BaseRedisProtocol()
        self.reader = hiredis.Reader()

    def call(self, *args: Any) -> Any:
        self.sock.sendall(self.packer._build_command(*args))
        while (reply := self.reader.gets()) is False:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.reader.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise AssertionError(f"{args[0]}: {reply}")
        return reply

    def close(self) -> None:
        self.sock.close()

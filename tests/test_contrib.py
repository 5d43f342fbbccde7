"""
Tests for the systemd units in contrib/: systemd accepts them, and the
daemon accepts the options they start it with.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from soukets.options import Options
from tests.daemon import CHECKOUT

UNITS = [
    "soukets.service",
    "soukets@.service",
    "socket-activation/soukets.socket",
    "socket-activation/soukets.service",
]


def exec_start(unit: str) -> list[str]:
    text = (CHECKOUT / "contrib" / unit).read_text().replace("\\\n", " ")
    lines = re.findall(r"^ExecStart=(.*)$", text, re.M)
    return shlex.split(lines[0]) if lines else []


class SystemdUnitTests(SynchronousTestCase):
    def test_verify(self) -> None:
        """
        systemd-analyze verify finds nothing to say about the units (with
        the twistd path pointed at this environment's).
        """
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is needed: apt-get install systemd")
        twistd = str(Path(sys.executable).parent / "twistd")
        directory = Path(self.mktemp())
        directory.mkdir()
        for unit in UNITS:
            text = (CHECKOUT / "contrib" / unit).read_text()
            name = unit.replace("@.", "@7777.")
            (directory / name).parent.mkdir(exist_ok=True)
            (directory / name).write_text(text.replace("/opt/soukets/bin/twistd", twistd))
        for unit in UNITS:
            name = unit.replace("@.", "@7777.")
            # A .socket is verified with the service it starts.
            together = [directory / name, *(
                [(directory / name).with_suffix(".service")] if name.endswith(".socket") else []
            )]
            done = subprocess.run(
                [analyze, "verify", *map(str, together)],
                capture_output=True, text=True, timeout=60,
            )
            said = [
                line for line in (done.stdout + done.stderr).splitlines()
                if name in line or "soukets" in line
            ]
            self.assertEqual((done.returncode, said), (0, []), unit)

    def test_options_accepted(self) -> None:
        """
        The command line each unit runs is one the daemon accepts.
        """
        for unit in UNITS:
            argv = exec_start(unit)
            if not argv:
                continue  # a .socket unit runs nothing
            self.assertEqual(argv[1:5], ["--nodaemon", "--pidfile=", "--reactor=soukets", "soukets"])
            args = [
                a.replace("%i", "7778")
                .replace("/run/soukets/clients.json", self.mktemp() + "/c.json")
                for a in argv[5:]
                if a not in ("$SOUKETS_OPTIONS", "$SOUKETS_WEB")
            ]
            if "$SOUKETS_WEB" in argv:
                args.append("--no-web")  # the unit's default
            # (A systemd: endpoint needs the socket systemd passes, which
            # SocketActivationTests does for real; here, any endpoint.)
            args = ["tcp:0" if a.startswith("systemd:") else a for a in args]
            options = Options()
            options.parseOptions(args + ["--game", "chat"])
            self.assertTrue(
                "backlog=4096" in options["listen"][0] or unit.startswith("socket-activation/"),
                unit,
            )


class SocketActivationTests(SynchronousTestCase):
    def test_activated(self) -> None:
        """
        Started by systemd-socket-activate (systemd's own tool) with the
        socket it passes, soukets answers on that socket.
        """
        import signal

        from tests.daemon import Client, environment, prepare_child
        from tests.test_browser import free_port

        tool = shutil.which("systemd-socket-activate")
        self.assertIsNotNone(tool, "systemd-socket-activate is needed: apt-get install systemd")
        port = free_port()
        process = subprocess.Popen(
            # (The tool passes the launched program only the variables it is
            # told to: the checkout's code first on the path.)
            [tool, "-l", f"127.0.0.1:{port}", "--fdname=soukets",
             "-E", f"PYTHONPATH={environment()['PYTHONPATH']}",
             sys.executable, "-m", "soukets", "--listen", "systemd:domain=INET:index=0",
             "--no-web", "--counter-file", self.mktemp() + "/c.json"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment(),
            preexec_fn=prepare_child,
        )

        def stop() -> None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

        self.addCleanup(stop)
        import time

        deadline = time.monotonic() + 20
        while True:
            try:
                client = Client(port)
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline, "the socket never opened")
                time.sleep(0.05)
        self.addCleanup(client.close)
        try:
            client.expect("welcome")
        except OSError:
            stop()
            raise AssertionError(process.stdout.read().decode(errors="replace"))

    def test_no_socket_passed(self) -> None:
        from tests.daemon import environment

        env = {k: v for k, v in environment().items() if k not in ("LISTEN_FDS", "LISTEN_PID")}
        done = subprocess.run(
            [sys.executable, "-m", "soukets", "--listen", "systemd:domain=INET:index=0",
             "--no-web", "--counter-file", self.mktemp() + "/c.json"],
            capture_output=True, text=True, env=env, timeout=60,
        )
        self.assertNotEqual(done.returncode, 0)
        said = (done.stdout + done.stderr).strip().splitlines()
        self.assertEqual(len(said), 1, said)
        self.assertIn("systemd passed no socket for it", said[0])
        self.assertIn("systemd-socket-activate", said[0])


class ClusterExampleTests(SynchronousTestCase):
    def test_every_node_command_is_accepted(self) -> None:
        """
        The three nodes of contrib/cluster/compose.yaml run a command line
        the daemon accepts, on one Redis, and HAProxy balances over them.
        """
        compose = (CHECKOUT / "contrib" / "cluster" / "compose.yaml").read_text()
        commands = re.findall(r'command: sh -c "pip install --quiet /src && soukets (.*)"', compose)
        self.assertEqual(len(commands), 3)
        engines = set()
        for command in commands:
            options = Options()
            options.parseOptions(shlex.split(command) + ["--counter-file", self.mktemp() + "/c.json"])
            engines.add(options["engine"])
        self.assertEqual(engines, {"redis://redis:6379"})
        haproxy = (CHECKOUT / "contrib" / "cluster" / "haproxy.cfg").read_text()
        self.assertEqual(re.findall(r"server (node\d) \1:7777", haproxy), ["node1", "node2", "node3"])

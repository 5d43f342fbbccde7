"""
End-to-end tests of the host-wide client cap: several real daemons sharing
one counter file, raced with real connections; killed and stopped
processes; a broken counter file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import Client, Daemon

CAP = 12


def first_frame(port: int) -> tuple[socket.socket, str]:
    """
    Connect and read the first frame's type (welcome or error).
    """
    client = Client(port)
    body = client.read()[1]
    kind = body["type"] if body["type"] == "welcome" else body["code"]
    return client.sock, kind


class SharedCapTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.counter = self.mktemp() + "/clients.json"
        self.daemons = []
        for game in ("rps", "chat", "rps"):
            daemon = Daemon(
                self.mktemp(), "--max-clients", str(CAP), "--game", game,
                "--no-auto-queue", counter_file=self.counter,
            )
            self.addCleanup(daemon.stop)
            self.daemons.append(daemon)

    def host_clients(self) -> int:
        document = json.loads(Path(self.counter).read_text())
        return sum(record["clients"] for record in document["processes"])

    def wait_host_clients(self, expected: int) -> None:
        deadline = time.monotonic() + 10
        while self.host_clients() != expected:
            if time.monotonic() > deadline:
                self.fail(f"the host never came to {expected} clients")
            time.sleep(0.05)

    def burst(self, per_daemon: int) -> dict[str, list[socket.socket]]:
        """
        Open C{per_daemon} connections to each daemon at once, from a thread
        per daemon; sort them by what they were told.
        """
        told: dict[str, list[socket.socket]] = {}
        lock = threading.Lock()

        def hammer(daemon: Daemon) -> None:
            for _ in range(per_daemon):
                sock, kind = first_frame(daemon.port)
                with lock:
                    told.setdefault(kind, []).append(sock)

        threads = [threading.Thread(target=hammer, args=(d,)) for d in self.daemons]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for socks in told.values():
            for sock in socks:
                self.addCleanup(sock.close)
        return told

    def test_exact_under_contention(self) -> None:
        """
        Three daemons racing for one cap admit exactly the cap: never more,
        and no refusal while the host was below it.
        """
        told = self.burst(CAP)
        self.assertEqual(len(told["welcome"]), CAP)
        self.assertEqual(len(told["server_full"]), 2 * CAP)
        self.assertEqual(self.host_clients(), CAP)
        # Free five places; exactly five newcomers get in.
        for sock in told["welcome"][:5]:
            sock.close()
        self.wait_host_clients(CAP - 5)
        told = self.burst(4)
        self.assertEqual((len(told["welcome"]), len(told["server_full"])), (5, 7))

    def test_churn(self) -> None:
        """
        Hundreds of connects and disconnects raced from many threads never
        see more than the cap admitted at once; at the end every place is
        given back.
        """
        lock = threading.Lock()
        state = {"open": 0, "most": 0, "admitted": 0, "refused": 0}

        def churn(daemon: Daemon) -> None:
            for _ in range(40):
                sock, kind = first_frame(daemon.port)
                with lock:
                    if kind == "welcome":
                        state["open"] += 1
                        state["admitted"] += 1
                        state["most"] = max(state["most"], state["open"])
                    else:
                        state["refused"] += 1
                if kind == "welcome":
                    with lock:
                        state["open"] -= 1
                sock.close()

        threads = [
            threading.Thread(target=churn, args=(d,)) for d in self.daemons for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertEqual(state["admitted"] + state["refused"], 9 * 40)
        self.assertLessEqual(state["most"], CAP)
        self.assertGreater(state["admitted"], 0)
        self.wait_host_clients(0)
        for daemon in self.daemons:
            self.assertNotIn("Unhandled", daemon.output)
            self.assertNotIn("Traceback", daemon.output)


class ProcessDeathTests(SynchronousTestCase):
    def records(self, path: str) -> dict[int, int]:
        document = json.loads(Path(path).read_text())
        return {r["pid"]: r["clients"] for r in document["processes"]}

    def test_kill_9_reclaimed(self) -> None:
        """
        The clients of a daemon killed with SIGKILL are reclaimed by the next
        daemon that touches the counter.
        """
        counter = self.mktemp() + "/clients.json"
        doomed = Daemon(self.mktemp(), "--max-clients", "3", counter_file=counter)
        self.addCleanup(doomed.stop)
        survivor = Daemon(self.mktemp(), "--max-clients", "3", counter_file=counter)
        self.addCleanup(survivor.stop)
        held = [doomed.client() for _ in range(3)]
        for client in held:
            self.addCleanup(client.close)
            self.assertEqual(client.read()[1]["type"], "welcome")
        refused = survivor.client()
        self.assertEqual(refused.read()[1]["code"], "server_full")
        refused.close()
        self.assertEqual(self.records(counter)[doomed.process.pid], 3)
        doomed.stop(signal.SIGKILL)
        welcomed = survivor.client()
        self.addCleanup(welcomed.close)
        self.assertEqual(welcomed.read()[1]["type"], "welcome")
        self.assertNotIn(doomed.process.pid, self.records(counter))
        survivor.wait_for(f"reclaimed 3 client\\(s\\) of dead process {doomed.process.pid}")

    def daemon_with_client(self) -> tuple[Daemon, str]:
        """
        A daemon with one connected client, and its counter file.
        """
        counter = self.mktemp() + "/clients.json"
        daemon = Daemon(self.mktemp(), counter_file=counter)
        self.addCleanup(daemon.stop)
        client = daemon.client()
        self.addCleanup(client.close)
        self.assertEqual(client.read()[1]["type"], "welcome")
        return daemon, daemon.counter_file

    def test_clean_stop_removes_record(self) -> None:
        daemon, counter = self.daemon_with_client()
        self.assertEqual(self.records(counter), {daemon.process.pid: 1})
        self.assertEqual(daemon.stop(signal.SIGINT), 0)
        self.assertEqual(self.records(counter), {})

    def test_broken_file_mid_run(self) -> None:
        """
        A counter file garbled while the daemon runs is logged and rebuilt;
        the daemon goes on admitting clients.
        """
        daemon, counter = self.daemon_with_client()
        Path(counter).write_bytes(b'{"version": 1, "proc')
        second = daemon.client()
        self.addCleanup(second.close)
        self.assertEqual(second.read()[1]["type"], "welcome")
        daemon.wait_for("was unreadable")
        self.assertEqual(self.records(counter), {daemon.process.pid: 2})

    def test_counter_file_gone_mid_run(self) -> None:
        """
        A counter file that cannot be written any more refuses clients with
        server_full and a log line, and recovers when the path is usable.
        """
        counter = self.mktemp() + "/clients.json"
        daemon = Daemon(self.mktemp(), counter_file=counter)
        self.addCleanup(daemon.stop)
        counter = daemon.counter_file
        os.unlink(counter)
        os.mkdir(counter)
        refused = daemon.client()
        self.addCleanup(refused.close)
        error = refused.read()[1]
        self.assertEqual(error["code"], "server_full")
        daemon.wait_for("client counter: refusing a client")
        os.rmdir(counter)
        welcomed = daemon.client()
        self.addCleanup(welcomed.close)
        self.assertEqual(welcomed.read()[1]["type"], "welcome")

"""
Tests for L{soukets.counter}: the file-locked host-wide client count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from soukets.counter import (
    Admission,
    CounterError,
    CounterFile,
    HostCounterService,
    process_alive,
    process_start_time,
)


def dead_pid() -> int:
    """
    The PID of a process that has exited.
    """
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class ProcessIdentityTests(SynchronousTestCase):
    def test_this_process(self) -> None:
        start = process_start_time(os.getpid())
        self.assertIsNotNone(start)
        self.assertTrue(process_alive(os.getpid(), start))

    def test_dead(self) -> None:
        self.assertFalse(process_alive(dead_pid(), None))

    def test_reused_pid(self) -> None:
        """
        A live PID with another start time is another process.
        """
        self.assertFalse(process_alive(os.getpid(), "1"))


class CounterFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp()) / "sub" / "clients.json"
        self.counter = CounterFile.for_this_process(self.path, lock_timeout=0.2)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def records(self) -> list[dict]:
        return json.loads(self.path.read_text())["processes"]

    def write(self, *records: dict) -> None:
        self.path.write_text(json.dumps({"version": 1, "processes": list(records)}))

    def test_missing_directory_made(self) -> None:
        self.assertTrue(self.path.parent.is_dir())

    def test_admit_up_to_cap(self) -> None:
        self.assertEqual(self.counter.admit(2), (True, 1))
        self.assertEqual(self.counter.admit(2), (True, 2))
        self.assertEqual(self.counter.admit(2), (False, 2))
        self.assertEqual(self.counter.release(), 1)
        self.assertEqual(self.counter.admit(2), (True, 2))
        self.assertEqual(self.records(), [{"pid": os.getpid(), "start": self.counter.start, "clients": 2}])

    def test_other_processes_count(self) -> None:
        """
        The cap counts every live process's clients.
        """
        parent = os.getppid()
        self.write({"pid": parent, "start": process_start_time(parent), "clients": 3})
        self.assertEqual(self.counter.admit(4), (True, 4))
        self.assertEqual(self.counter.admit(4), (False, 4))
        self.assertEqual(len(self.records()), 2)

    def test_dead_process_reclaimed(self) -> None:
        """
        The clients of a process that is gone are dropped from the count,
        and the reclaim is logged.
        """
        self.write({"pid": dead_pid(), "start": None, "clients": 50})
        self.assertEqual(self.counter.admit(10), (True, 1))
        self.assertEqual([r["pid"] for r in self.records()], [os.getpid()])
        self.assertTrue(any("reclaimed" in e.get("log_format", "") for e in self.events))

    def test_reused_pid_reclaimed(self) -> None:
        parent = os.getppid()
        self.write({"pid": parent, "start": "12", "clients": 50})
        self.assertEqual(self.counter.total(), 0)

    def test_garbage_file(self) -> None:
        """
        A truncated or garbage file is logged and started afresh; this
        process's record is written back from memory.
        """
        self.counter.admit(10)
        for garbage in (b"", b'{"version":1,"proc', b"\x00\xff" * 10, b"[]", b'{"processes":[{"pid":"x"}]}'):
            self.path.write_bytes(garbage)
            self.assertEqual(self.counter.total(), 1)
            self.assertEqual(len(self.records()), 1)
        warnings = [e for e in self.events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warnings), 5)

    def test_remove(self) -> None:
        self.counter.admit(10)
        self.counter.remove()
        self.assertEqual(self.records(), [])

    def test_read_only(self) -> None:
        """
        A counter file that cannot be written raises L{CounterError}.
        """
        self.path.mkdir()  # a directory where the file should be
        self.assertRaises(CounterError, self.counter.admit, 10)

    def hold_lock(self) -> subprocess.Popen:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, sys, time\n"
                "f = open(sys.argv[1], 'a')\n"
                "fcntl.flock(f, fcntl.LOCK_EX)\n"
                "print('locked', flush=True)\n"
                "time.sleep(60)\n",
                str(self.path) + ".lock",
            ],
            stdout=subprocess.PIPE,
        )
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline(), b"locked\n")
        holder.stdout.close()
        return holder

    def test_lock_held_too_long(self) -> None:
        """
        A lock held by a live process past the timeout is a L{CounterError};
        nothing waits forever.
        """
        self.hold_lock()
        error = self.assertRaises(CounterError, self.counter.admit, 10)
        self.assertIn("0.2 s", str(error))

    def test_lock_of_dead_process(self) -> None:
        """
        A lock whose holder was killed (no chance to unlock) is free again.
        """
        holder = self.hold_lock()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        self.assertEqual(self.counter.admit(10), (True, 1))


class HostCounterServiceTests(TestCase):
    """
    The service runs its transactions on its own thread.
    """

    @inlineCallbacks
    def test_admit_release(self):
        path = Path(self.mktemp()) / "clients.json"
        service = HostCounterService(path, max_clients=1)
        service.startService()
        self.assertEqual((yield service.admit()), Admission.ADMITTED)
        self.assertEqual((yield service.admit()), Admission.FULL)
        self.assertEqual((yield service.host_clients()), 1)
        yield service.release()
        self.assertEqual((yield service.host_clients()), 0)
        yield service.admit()
        yield service.stopService()
        self.assertEqual(json.loads(path.read_text())["processes"], [])

    @inlineCallbacks
    def test_unavailable(self):
        path = Path(self.mktemp()) / "clients.json"
        service = HostCounterService(path, max_clients=5)
        service.startService()
        self.addCleanup(service.stopService)
        os.unlink(path)
        path.mkdir()
        self.assertEqual((yield service.admit()), Admission.UNAVAILABLE)
        self.assertEqual((yield service.host_clients()), 0)
        path.rmdir()
        self.assertEqual((yield service.admit()), Admission.ADMITTED)

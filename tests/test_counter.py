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

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from soukets.counter import (
    MAX_FILE_BYTES,
    Admission,
    CounterError,
    CounterFile,
    HostCounterService,
    prepare_directory,
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
        self.write({"pid": dead_pid(), "start": "12345", "clients": 50})
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
        stopped = []
        self.addCleanup(lambda: None if stopped else service.stopService())
        self.assertEqual((yield service.admit()), Admission.ADMITTED)
        self.assertEqual((yield service.admit()), Admission.FULL)
        self.assertEqual((yield service.host_clients()), 1)
        yield service.release()
        self.assertEqual((yield service.host_clients()), 0)
        yield service.admit()
        stopped.append(True)
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


class UntrustedFileTests(SynchronousTestCase):
    """
    Whoever can write beside the counter file decides nothing: links, FIFOs,
    huge or forged files are read as garbage and replaced, and nothing is
    ever written through a planted link.
    """

    def setUp(self) -> None:
        self.path = Path(self.mktemp()) / "clients.json"
        self.counter = CounterFile.for_this_process(self.path, lock_timeout=0.2)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events if e.get("log_level") == LogLevel.warn]

    def assertHealed(self) -> None:
        self.assertTrue(self.path.is_file() and not self.path.is_symlink())
        records = json.loads(self.path.read_text())["processes"]
        self.assertEqual([r["pid"] for r in records], [os.getpid()])

    def test_fifo(self) -> None:
        """
        A FIFO in the file's place is not read (which would block forever);
        it is logged and replaced by a regular file.
        """
        os.mkfifo(self.path)
        self.assertEqual(self.counter.admit(10), (True, 1))
        self.assertHealed()
        self.assertIn("not a regular file", self.warnings()[0])

    def test_symlink_not_followed(self) -> None:
        """
        A link in the file's place is neither read nor written through.
        """
        target = Path(self.mktemp())
        target.write_text("precious")
        self.path.symlink_to(target)
        self.assertEqual(self.counter.admit(10), (True, 1))
        self.assertEqual(target.read_text(), "precious")
        self.assertHealed()
        self.assertIn("symbolic link", self.warnings()[0])

    def test_predictable_temporary_path_not_written_through(self) -> None:
        """
        Temporary files have random names: a link planted where a
        predictable one would be is left alone.
        """
        target = Path(self.mktemp())
        target.write_text("precious")
        planted = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        planted.symlink_to(target)
        self.counter.admit(10)
        self.assertEqual(target.read_text(), "precious")
        self.assertHealed()
        leftovers = [p.name for p in self.path.parent.iterdir() if p.name.endswith(".tmp")]
        self.assertEqual(leftovers, [planted.name])

    def test_deeply_nested(self) -> None:
        """
        200,000 C{[} is garbage like any other: logged, started afresh.
        """
        self.path.write_bytes(b"[" * 200_000)
        self.assertEqual(self.counter.admit(10), (True, 1))
        self.assertHealed()
        self.assertIn("nested too deeply", self.warnings()[0])

    def test_too_large(self) -> None:
        self.path.write_bytes(b" " * (MAX_FILE_BYTES + 1))
        self.assertEqual(self.counter.admit(10), (True, 1))
        self.assertHealed()
        self.assertIn("larger than", self.warnings()[0])

    def test_forged_records(self) -> None:
        """
        Records that cannot be a live soukets process's are dropped, each
        with a log line: pid 0 or 1, counts out of range or not whole, no
        start time.
        """
        parent = os.getppid()
        start = process_start_time(parent)
        forged = [
            {"pid": 1, "start": process_start_time(1) or "1", "clients": 5},
            {"pid": 0, "start": "1", "clients": 5},
            {"pid": parent, "start": start, "clients": 1e9},
            {"pid": parent, "start": start, "clients": 10**9},
            {"pid": parent, "start": start, "clients": -100},
            {"pid": parent, "start": start, "clients": True},
            {"pid": parent, "start": None, "clients": 5},
            {"pid": str(parent), "start": start, "clients": 5},
            "not a record",
        ]
        self.path.write_text(json.dumps({"version": 1, "processes": forged}))
        self.assertEqual(self.counter.admit(3), (True, 1))
        self.assertHealed()
        self.assertEqual(len(self.warnings()), len(forged))
        # A well-formed record of a live process still counts.
        self.path.write_text(json.dumps({"version": 1, "processes": [
            {"pid": parent, "start": start, "clients": 2}]}))
        self.assertEqual(self.counter.admit(3), (False, 3))


class DirectoryTests(SynchronousTestCase):
    """
    The counter file's directory must be this user's alone.
    """

    def test_made_private(self) -> None:
        path = Path(self.mktemp()) / "new" / "clients.json"
        prepare_directory(path)
        self.assertEqual(os.stat(path.parent).st_mode & 0o777, 0o700)

    def test_writable_by_others(self) -> None:
        for mode in (0o777, 0o775, 0o1777):
            directory = Path(self.mktemp())
            directory.mkdir()
            os.chmod(directory, mode)
            error = self.assertRaises(
                CounterError, prepare_directory, directory / "clients.json"
            )
            self.assertIn("writable by group or others", str(error))
            self.assertNotIn("\n", str(error))

    def test_owned_by_another_user(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir(mode=0o700)
        other = 65534 if os.getuid() != 65534 else 65533
        if os.getuid() == 0:
            os.chown(directory, other, -1)
        else:
            # Without root, another user's directory is one we did not make.
            directory = Path("/")
        error = self.assertRaises(
            CounterError, prepare_directory, directory / "clients.json"
        )
        self.assertIn("belongs to another user", str(error))

    def test_refused_by_counter_file(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        os.chmod(directory, 0o777)
        self.assertRaises(
            CounterError, CounterFile.for_this_process, directory / "clients.json"
        )


class BoundedAnswerTests(SynchronousTestCase):
    """
    The reactor never waits on the counter for more than C{answer_timeout}
    seconds, whatever the transaction does.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.pending: list[Deferred] = []
        self.ran: list[object] = []

        def run(f):
            self.ran.append(f)
            d = Deferred()
            self.pending.append((d, f))
            return d

        self.service = HostCounterService(
            Path(self.mktemp()) / "clients.json", 5, reactor=self.clock, run=run
        )
        self.service.startService()

    def finish(self, index: int = 0) -> None:
        d, f = self.pending[index]
        d.callback(f())

    def test_stuck_admission_refused(self) -> None:
        """
        An admission the counter has not answered within the bound is
        refused; if the transaction admits the client later, its slot is
        given back.
        """
        results: list[Admission] = []
        self.service.admit().addCallback(results.append)
        self.clock.advance(1.9)
        self.assertEqual(results, [])
        self.clock.advance(0.1)
        self.assertEqual(results, [Admission.UNAVAILABLE])
        self.finish(0)  # the stuck admit finally counts the client...
        self.assertEqual(len(self.pending), 2)  # ...and a release follows
        self.finish(1)
        self.assertEqual(self.service._file.clients, 0)

    def test_burst_shares_one_bound(self) -> None:
        """
        Admissions taken by one transaction share one timer; stuck, they
        are all refused when it fires, and the slots the transaction then
        gives are handed back in one more transaction.
        """
        results: list[Admission] = []
        for _ in range(3):
            self.service.admit().addCallback(results.append)  # the first transaction
        self.assertEqual(len(self.pending), 1)
        for _ in range(100):
            self.service.admit().addCallback(results.append)  # wait for the next
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.clock.advance(2)
        self.assertEqual(results, [Admission.UNAVAILABLE] * 103)
        self.finish(0)  # the first admits 3 clients, too late...
        self.assertEqual(len(self.pending), 2)  # ...and one transaction releases them
        self.finish(1)
        self.assertEqual(self.service._file.clients, 0)
        self.assertEqual(len(self.pending), 2)  # the 100 refused never reached the file
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_burst_answered_in_order(self) -> None:
        """
        A burst answered in time: the first ones the cap allows are
        admitted, the rest are told the host is full, and no timer is left.
        """
        results: list[Admission] = []
        self.service.admit().addCallback(results.append)
        for _ in range(7):
            self.service.admit().addCallback(results.append)
        self.finish(0)
        self.finish(1)
        self.assertEqual(results, [Admission.ADMITTED] * 5 + [Admission.FULL] * 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_prompt_admission(self) -> None:
        results: list[Admission] = []
        self.service.admit().addCallback(results.append)
        self.finish(0)
        self.assertEqual(results, [Admission.ADMITTED])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stuck_total(self) -> None:
        results: list[int] = []
        self.service.last_total = 7
        self.service.host_clients().addCallback(results.append)
        self.clock.advance(2)
        self.assertEqual(results, [7])

    def test_stuck_stop(self) -> None:
        stopped: list[object] = []
        self.service.stopService().addCallback(stopped.append)
        self.assertEqual(stopped, [])
        self.clock.advance(2)
        self.assertEqual(stopped, [None])

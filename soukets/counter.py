"""
The host-wide client count: one file, guarded by a file lock, that every
soukets process on the host shares to keep C{--max-clients} for all of them
together.

The file holds one record per live process (its PID, its start time, its
number of clients).  Every update is one transaction under the lock: read
the file, drop the records of processes that no longer exist, check and
change this process's own record, write the file back atomically.  A process
always rewrites its own record from its in-memory count, so a lost or
garbled file heals itself at each process's next update.

The transactions block (on the lock, and on file I/O), so they run on a
dedicated thread, one at a time, and never on the reactor thread.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import attrs
from filelock import FileLock, Timeout
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

LOCK_TIMEOUT = 0.5
"""Seconds a transaction waits for the lock before giving up."""

FORMAT_VERSION = 1


def default_counter_file() -> Path:
    """
    The default counter file: per user, in the runtime directory
    (C{$XDG_RUNTIME_DIR}) or else the temporary directory.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "soukets" / "clients.json"
    return Path(tempfile.gettempdir()) / f"soukets-{os.getuid()}" / "clients.json"


def process_start_time(pid: int) -> str | None:
    """
    When process C{pid} started (clock ticks since boot, from C{/proc}), or
    L{None} if this cannot be known.  A PID and its start time together name
    one process, even after the PID is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[19].decode("ascii")


def process_alive(pid: int, start: str | None) -> bool:
    """
    Whether the process recorded as C{pid} started at C{start} still runs.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if start is None:
        return True
    now = process_start_time(pid)
    return now is None or now == start


@attrs.frozen
class ProcessRecord:
    """
    One process's entry in the counter file.
    """

    pid: int
    start: str | None
    clients: int


class CounterError(Exception):
    """
    The counter file could not be used: the lock could not be had in time,
    or the file could not be read or written.
    """


@attrs.define
class CounterFile:
    """
    The counter file's transactions, run synchronously (they block).
    """

    path: Path
    pid: int
    start: str | None
    clients: int = 0
    lock_timeout: float = LOCK_TIMEOUT
    log: Logger = attrs.field(factory=Logger)
    _lock: FileLock = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(
            str(self.path) + ".lock",
            timeout=self.lock_timeout,
            thread_local=False,
            poll_interval=0.0005,
        )

    @classmethod
    def for_this_process(cls, path: Path, **kwargs: Any) -> CounterFile:
        pid = os.getpid()
        return cls(path, pid, process_start_time(pid), **kwargs)

    def admit(self, max_clients: int) -> tuple[bool, int]:
        """
        Count one more client for this process unless the host is at
        C{max_clients}.

        @return: whether it was admitted, and the host's total after.
        """

        def change(total: int) -> bool:
            if total >= max_clients:
                return False
            self.clients += 1
            return True

        return self._transact(change)

    def release(self) -> int:
        """
        Count one client less for this process; return the host's total.
        """

        def change(total: int) -> None:
            self.clients = max(0, self.clients - 1)

        return self._transact(change)[1]

    def total(self) -> int:
        """
        The host's total, with this process's record brought up to date.
        """
        return self._transact(lambda total: None)[1]

    def remove(self) -> None:
        """
        Take this process's record out of the file (it is stopping).
        """
        self.clients = 0
        self._transact(lambda total: None, keep_own=False)

    def _transact(
        self, change: Callable[[int], T], keep_own: bool = True
    ) -> tuple[T, int]:
        try:
            with self._lock.acquire():
                others = self._read_others()
                result = change(sum(r.clients for r in others) + self.clients)
                records = others
                if keep_own:
                    records = others + [
                        ProcessRecord(self.pid, self.start, self.clients)
                    ]
                self._write(records)
        except Timeout:
            raise CounterError(
                f"the lock on {self.path} was not had within "
                f"{self.lock_timeout} s"
            )
        except OSError as e:
            raise CounterError(f"{self.path}: {e.strerror or e}")
        return result, sum(r.clients for r in records)

    def _read_others(self) -> list[ProcessRecord]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            document = json.loads(raw)
            records = [
                ProcessRecord(int(r["pid"]), r["start"], int(r["clients"]))
                for r in document["processes"]
            ]
        except (ValueError, KeyError, TypeError) as e:
            self.log.warn(
                "counter file {path} was unreadable ({error}); starting it "
                "afresh: every live process rewrites its own record at its "
                "next update",
                path=str(self.path),
                error=f"{type(e).__name__}: {e}",
            )
            return []
        others = []
        for record in records:
            if record.pid == self.pid:
                continue
            if not process_alive(record.pid, record.start):
                self.log.info(
                    "reclaimed {clients} client(s) of dead process {pid} from "
                    "{path}",
                    clients=record.clients,
                    pid=record.pid,
                    path=str(self.path),
                )
                continue
            others.append(record)
        return others

    def _write(self, records: list[ProcessRecord]) -> None:
        document = {
            "version": FORMAT_VERSION,
            "processes": [attrs.asdict(r) for r in records],
        }
        temporary = self.path.with_name(f".{self.path.name}.{self.pid}.tmp")
        temporary.write_text(json.dumps(document))
        os.replace(temporary, self.path)


class Admission(enum.Enum):
    """
    What the counter says to a new connection.
    """

    ADMITTED = "admitted"
    FULL = "full"
    UNAVAILABLE = "unavailable"  # the counter file could not be used


class HostCounterService(Service):
    """
    The client cap shared by every soukets process on the host, as a
    service.  Its transactions run on a thread of their own, one at a time,
    so the reactor never waits on the lock; when the counter file cannot be
    used, new clients are refused (the cap is a promise) and the reason is
    logged.

    @param run: how to run a blocking transaction and get its result as a
        L{Deferred}; by default, on the service's own thread.
    """

    name = "counter"
    log = Logger()

    def __init__(
        self,
        path: Path,
        max_clients: int,
        reactor: Any = None,
        run: Callable[[Callable[[], T]], Deferred[T]] | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.max_clients = max_clients
        self._reactor = reactor
        self._run = run
        self._lock_timeout = lock_timeout
        self._pool: ThreadPool | None = None
        self._file: CounterFile | None = None
        self.last_total = 0

    def startService(self) -> None:
        """
        Make the lock (after twistd's fork, never before) and the thread,
        and write this process's record.

        @raise CounterError: if the counter file cannot be used at all.
        """
        self._file = CounterFile.for_this_process(
            self.path, lock_timeout=self._lock_timeout
        )
        self.last_total = self._file.total()
        if self._run is None:
            if self._reactor is None:
                from twisted.internet import reactor

                self._reactor = reactor
            self._pool = ThreadPool(1, 1, name="soukets-counter")
            self._pool.start()
            self._run = lambda f: deferToThreadPool(self._reactor, self._pool, f)
        super().startService()

    def stopService(self) -> Deferred[None]:
        """
        Remove this process's record, then stop the thread.
        """
        super().stopService()
        d = self._call(self._file.remove)  # type: ignore[union-attr]
        d.addErrback(self._logFailure, "could not remove this process's record")

        def stop_pool(_: object) -> None:
            if self._pool is not None:
                self._pool.stop()
                self._pool = None

        return d.addBoth(stop_pool)

    def _call(self, f: Callable[[], T]) -> Deferred[T]:
        assert self._run is not None
        return maybeDeferred(self._run, f)

    def _logFailure(self, failure: Any, what: str) -> None:
        self.log.error(
            "client counter: {what}: {error}",
            what=what,
            error=failure.getErrorMessage(),
        )

    def admit(self) -> Deferred[Admission]:
        """
        Count a new client, unless the host is full.
        """
        assert self._file is not None
        d = self._call(lambda: self._file.admit(self.max_clients))  # type: ignore[union-attr]

        def admitted(result: tuple[bool, int]) -> Admission:
            ok, self.last_total = result
            return Admission.ADMITTED if ok else Admission.FULL

        def unavailable(failure: Any) -> Admission:
            failure.trap(CounterError)
            self._logFailure(failure, "refusing a client")
            return Admission.UNAVAILABLE

        return d.addCallbacks(admitted, unavailable)

    def release(self) -> Deferred[None]:
        """
        A counted client left.
        """
        assert self._file is not None
        d = self._call(self._file.release)

        def released(total: int) -> None:
            self.last_total = total

        return d.addCallbacks(
            released, self._logFailure, errbackArgs=("releasing a client",)
        )

    def host_clients(self, _server: object = None) -> Deferred[int]:
        """
        How many clients every process on the host has now (the last known
        figure if the counter file cannot be read).
        """
        assert self._file is not None
        d = self._call(self._file.total)

        def fallback(failure: Any) -> int:
            self._logFailure(failure, "reading the host's total")
            return self.last_total

        return d.addErrback(fallback)

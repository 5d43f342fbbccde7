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

The file and its directory trust nothing: the directory must belong to this
user and be closed to group and others (L{prepare_directory}); the file is
opened without following links and read only if it is a regular file of
bounded size; every record is checked (L{parse_records}); the file is written
through a fresh temporary file.  A transaction that fails for any reason
refuses the client (the cap is a promise), and every answer the reactor
waits for comes within L{ANSWER_TIMEOUT} seconds, whatever the file does.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import stat
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

import attrs
from filelock import FileLock, Timeout
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

LOCK_TIMEOUT = 0.5
"""Seconds a transaction waits for the lock before giving up."""

FORMAT_VERSION = 1

ANSWER_TIMEOUT = 2.0
"""
Seconds the reactor waits for a transaction: past it, a new client is
refused with C{server_full}, C{stats} gets the last known total, and a
stopping daemon stops without its record removed.
"""

MAX_FILE_BYTES = 1024 * 1024
"""A longer counter file is not read (it is garbage, and started afresh)."""

MAX_RECORD_CLIENTS = 1_000_000
"""No record may claim more clients than this (nor fewer than none)."""


def default_counter_file() -> Path:
    """
    The default counter file: per user, in the runtime directory
    (C{$XDG_RUNTIME_DIR}) or else the temporary directory.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "soukets" / "clients.json"
    return Path(tempfile.gettempdir()) / f"soukets-{os.getuid()}" / "clients.json"


def prepare_directory(path: Path) -> None:
    """
    Make the directory of counter file C{path} (mode 0700) if it is
    missing, and check that only this user can write in it: whoever can
    write there can replace the file and so decide who is admitted.

    @raise CounterError: with a one-line reason, if it is not safe or
        cannot be made.
    """
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.stat(directory)
    except OSError as e:
        raise CounterError(f"cannot make {directory}: {e.strerror or e}")
    if not stat.S_ISDIR(info.st_mode):
        raise CounterError(f"{directory} is not a directory")
    if info.st_uid != os.getuid():
        raise CounterError(
            f"{directory} belongs to another user (uid {info.st_uid}); the "
            "counter file's directory must be this user's own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CounterError(
            f"{directory} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):o}); make it 0700 or choose another "
            "--counter-file"
        )


def parse_records(raw: bytes) -> tuple[list[ProcessRecord], list[str]]:
    """
    Read the records of a counter file.

    @return: the well-formed records, and why each other one was dropped.
    @raise ValueError: the file is not a counter file at all.
    """
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply")
    if not isinstance(document, dict) or not isinstance(
        document.get("processes"), list
    ):
        raise ValueError('no "processes" list')
    records: list[ProcessRecord] = []
    dropped: list[str] = []
    for entry in document["processes"]:
        reason = _record_problem(entry)
        if reason is None:
            records.append(
                ProcessRecord(entry["pid"], entry["start"], entry["clients"])
            )
        else:
            dropped.append(f"{reason}: {json.dumps(entry)[:80]}")
    return records, dropped


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _record_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "not an object"
    pid, start, clients = entry.get("pid"), entry.get("start"), entry.get("clients")
    if not _is_int(pid) or pid <= 1:
        return "pid is not a process id above 1"
    if not (isinstance(start, str) and start.isdigit()):
        return "start is not a process start time"
    if not _is_int(clients) or not 0 <= clients <= MAX_RECORD_CLIENTS:
        return f"clients is not a whole number from 0 to {MAX_RECORD_CLIENTS}"
    return None


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


class _Unusable(Exception):
    """
    The counter file is there but cannot be read as one (a link, a FIFO, too
    large): it is started afresh.
    """


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
        prepare_directory(self.path)
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

    def change(self, admits: int, releases: int, max_clients: int) -> tuple[int, int]:
        """
        In one transaction: count C{releases} clients less for this process,
        then as many of C{admits} new clients as the host's cap of
        C{max_clients} allows.

        @return: how many of the new clients were admitted (the first ones
            asked for), and the host's total after.
        """
        # The released clients are gone whatever happens to the file.
        self.clients = max(0, self.clients - releases)
        admitted = 0

        def count(total: int) -> int:
            nonlocal admitted
            admitted = max(0, min(admits, max_clients - total))
            self.clients += admitted
            return admitted

        try:
            return self._transact(count)
        except CounterError:
            self.clients -= admitted  # refused, so not counted
            raise

    def admit(self, max_clients: int) -> tuple[bool, int]:
        """
        Count one more client for this process unless the host is at
        C{max_clients}.

        @return: whether it was admitted, and the host's total after.
        """
        admitted, total = self.change(1, 0, max_clients)
        return bool(admitted), total

    def release(self) -> int:
        """
        Count one client less for this process; return the host's total.
        """
        return self.change(0, 1, 0)[1]

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
        except Exception as e:
            # Whatever else went wrong, the transaction fails closed.
            raise CounterError(f"{self.path}: {type(e).__name__}: {e}")
        return result, sum(r.clients for r in records)

    def _read_bytes(self) -> bytes | None:
        """
        The file's bytes, or L{None} if there is no file.

        @raise _Unusable: it is a link, not a regular file, or too large.
        """
        try:
            fd = os.open(
                self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            )
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _Unusable("it is a symbolic link")
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _Unusable("it is not a regular file")
            chunks = []
            size = 0
            while size <= MAX_FILE_BYTES:
                chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise _Unusable(f"it is larger than {MAX_FILE_BYTES} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _read_others(self) -> list[ProcessRecord]:
        try:
            raw = self._read_bytes()
            if raw is None:
                return []
            records, dropped = parse_records(raw)
        except (_Unusable, ValueError) as e:
            self.log.warn(
                "counter file {path} was unreadable ({error}); starting it "
                "afresh: every live process rewrites its own record at its "
                "next update",
                path=str(self.path),
                error=str(e),
            )
            return []
        for reason in dropped:
            self.log.warn(
                "counter file {path}: dropped a record ({reason})",
                path=str(self.path),
                reason=reason,
            )
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
        # A fresh file (O_EXCL, a random name, mode 0600) in the same
        # directory, renamed over the old one: nothing planted at a
        # predictable path is ever written through.
        fd, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(document))
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise


class Admission(enum.Enum):
    """
    What the counter says to a new connection.
    """

    ADMITTED = "admitted"
    FULL = "full"
    UNAVAILABLE = "unavailable"  # the counter file could not be used


class _DaemonThreadPool(ThreadPool):
    """
    A thread pool whose thread never keeps the process alive: a transaction
    stuck in the kernel must not stop the daemon from exiting.
    """

    threadFactory = partial(threading.Thread, daemon=True)


@attrs.define(eq=False)
class _AdmissionBatch:
    """
    The admissions one counter transaction answers, and the one timer that
    bounds how long they wait.
    """

    waiting: list[Deferred[Admission]] = attrs.field(factory=list)
    timer: Any = None
    overdue: bool = False

    def answer(self, admitted: int, otherwise: Admission) -> None:
        """
        The first C{admitted} are admitted, the others get C{otherwise};
        the timer is no longer needed.
        """
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiting, self.waiting = self.waiting, []
        for index, each in enumerate(waiting):
            each.callback(Admission.ADMITTED if index < admitted else otherwise)


class HostCounterService(Service):
    """
    The client cap shared by every soukets process on the host, as a
    service.  Its transactions run on a thread of their own, one at a time,
    so the reactor never waits on the lock; when the counter file cannot be
    used, new clients are refused (the cap is a promise) and the reason is
    logged.  Every answer comes within C{answer_timeout} seconds: a
    transaction still running then is answered as if it had failed.

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
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.max_clients = max_clients
        self._reactor = reactor
        self._run = run
        self._lock_timeout = lock_timeout
        self.answer_timeout = answer_timeout
        self._pool: ThreadPool | None = None
        self._file: CounterFile | None = None
        self._running = 0  # transactions handed to the thread, not finished
        self._busy = False  # an admission/release transaction is running
        self._batch: _AdmissionBatch | None = None  # admissions the next transaction takes
        self._releases: list[Deferred[None]] = []
        self._when_idle: list[Deferred[None]] = []
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
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        if self._run is None:
            self._pool = _DaemonThreadPool(1, 1, name="soukets-counter")
            self._pool.start()
            self._run = lambda f: deferToThreadPool(self._reactor, self._pool, f)
        super().startService()

    def stopService(self) -> Deferred[None]:
        """
        Remove this process's record, then stop the thread (unless it is
        stuck, in which case it is left behind: it cannot keep the process
        alive).
        """
        super().stopService()
        # The record goes once the transactions already asked for are done
        # (a release run after it would write the record back).
        idle: Deferred[None] = Deferred()
        self._when_idle.append(idle)
        self._next_transaction()
        d = self._bounded(
            idle.addCallback(lambda _: self._call(self._file.remove)),  # type: ignore[union-attr]
            lambda: self.log.error(
                "client counter: this process's record was not removed "
                "within {seconds} s; stopping without it",
                seconds=self.answer_timeout,
            ),
        )
        d.addErrback(self._logFailure, "could not remove this process's record")

        def stop_pool(_: object) -> None:
            if self._pool is not None and not self._running:
                self._pool.stop()
            self._pool = None

        return d.addBoth(stop_pool)

    def _call(self, f: Callable[[], T]) -> Deferred[T]:
        assert self._run is not None
        self._running += 1
        d = maybeDeferred(self._run, f)

        def finished(result: Any) -> Any:
            self._running -= 1
            return result

        return d.addBoth(finished)

    def _bounded(
        self, d: Deferred[T], late: Callable[[], Any], then: Callable[[T], Any] = lambda r: None
    ) -> Deferred[Any]:
        """
        C{d}'s result if it comes within C{answer_timeout} seconds; else
        what C{late} returns, at once (C{d}'s result, when it comes, is
        handed to C{then}).
        """
        outcome: Deferred[Any] = Deferred()
        timer: Any = None

        def arrived(result: Any) -> None:
            if not outcome.called:
                if timer is not None:
                    timer.cancel()
                outcome.callback(result)
            elif not isinstance(result, Failure):
                then(result)

        d.addBoth(arrived)
        if not outcome.called:
            timer = self._reactor.callLater(
                self.answer_timeout, lambda: outcome.callback(late())
            )
        return outcome

    def _logFailure(self, failure: Any, what: str) -> None:
        self.log.error(
            "client counter: {what}: {error}",
            what=what,
            error=failure.getErrorMessage(),
        )

    def admit(self) -> Deferred[Admission]:
        """
        Count a new client, unless the host is full; L{Admission.UNAVAILABLE}
        if the counter cannot say within C{answer_timeout} seconds.

        Admissions and releases asked for while a transaction runs wait for
        the next one, which takes them all at once: a burst of connections
        costs a few transactions, not one each.  Admissions that one
        transaction takes share one bound (a timer from the first of them):
        a storm of reconnections costs a timer per transaction, not one per
        client.
        """
        batch = self._batch
        if batch is None:
            batch = self._batch = _AdmissionBatch()
            batch.timer = self._reactor.callLater(self.answer_timeout, self._overdue, batch)
        waiting: Deferred[Admission] = Deferred()
        batch.waiting.append(waiting)
        self._next_transaction()
        return waiting

    def _overdue(self, batch: _AdmissionBatch) -> None:
        """
        No answer for C{batch} within the bound: its clients are refused
        (if its transaction admits them later, their slots are given back).
        """
        batch.timer = None
        batch.overdue = True
        if self._batch is batch:
            self._batch = None  # (not taken by any transaction: none will)
        self.log.error(
            "client counter: no answer within {seconds} s; refusing "
            "{clients} client(s)",
            seconds=self.answer_timeout,
            clients=len(batch.waiting),
        )
        batch.answer(0, Admission.UNAVAILABLE)

    def release(self) -> Deferred[None]:
        """
        A counted client left.
        """
        waiting: Deferred[None] = Deferred()
        self._releases.append(waiting)
        self._next_transaction()
        return waiting

    def _next_transaction(self) -> None:
        if self._busy:
            return
        if not self.running:
            # Stopping: nobody new is admitted, releases need no file.
            batch, self._batch = self._batch, None
            releases, self._releases = self._releases, []
            if batch is not None:
                batch.answer(0, Admission.UNAVAILABLE)
            for waiting in releases:
                waiting.callback(None)
        if self._batch is None and not self._releases:
            idle, self._when_idle = self._when_idle, []
            for waiting in idle:
                waiting.callback(None)
            return
        assert self._file is not None
        batch, self._batch = self._batch or _AdmissionBatch(), None
        releases, self._releases = self._releases, []
        file, cap, admits = self._file, self.max_clients, len(batch.waiting)
        self._busy = True
        d = self._call(lambda: file.change(admits, len(releases), cap))

        def done(result: tuple[int, int]) -> None:
            admitted, self.last_total = result
            if batch.overdue:
                # Refused meanwhile: give their slots back.
                for _ in range(admitted):
                    self.release()
            else:
                batch.answer(admitted, Admission.FULL)
            for waiting in releases:
                waiting.callback(None)

        def failed(failure: Failure) -> None:
            what = [
                "refusing a client" if admits == 1 else f"refusing {admits} clients",
                f"releasing {len(releases)}",
            ]
            self._logFailure(
                failure, ", ".join(w for w, n in zip(what, (admits, len(releases))) if n)
            )
            batch.answer(0, Admission.UNAVAILABLE)
            for waiting in releases:
                waiting.callback(None)

        def next_one(_: object) -> None:
            self._busy = False
            self._next_transaction()

        d.addCallbacks(done, failed).addBoth(next_one)

    def host_clients(self, _server: object = None) -> Deferred[int]:
        """
        How many clients every process on the host has now (the last known
        figure if the counter file cannot be read within C{answer_timeout}
        seconds).
        """
        if self._file is None:
            return succeed(self.last_total)
        d = self._call(self._file.total)

        def fallback(failure: Any) -> int:
            self._logFailure(failure, "reading the host's total")
            return self.last_total

        return self._bounded(d.addErrback(fallback), lambda: self.last_total)

"""
The daemon's logs: the observer that writes them (C{--log-level},
C{--log-format text|json}, to where twistd would have written), and
reopening the files they go to, so that an operator's log rotation
(C{logrotate} moving the file, then C{SIGHUP}) makes soukets write to a
fresh file at the same path.

What soukets logs, by level: C{debug} each connection and departure, and
lobbies formed;
C{info} start-up, what listens where, games over, clients
refused at the cap, counter records reclaimed, signals; C{warn} clients cut
off (slow readers, floods), garbled counter files; C{error} counter
failures and bugs (with their traceback).  Nothing is logged per frame.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogPublisher,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile

LEVELS = ("debug", "info", "warn", "error", "critical")
FORMATS = ("text", "json")


def make_observer(level: str, format: str, twistd: Any = None) -> ILogObserver | None:
    """
    The observer for the daemon's log: events of C{level} and above, as
    text lines or one JSON object a line, written where twistd's own
    options (C{twistd}: C{--logfile}, C{--nodaemon}) say; L{None} when
    twistd logs to syslog, which it then keeps doing itself.
    """
    if twistd is not None and twistd.get("syslog"):
        return None
    logfile = twistd.get("logfile") if twistd is not None else None
    nodaemon = twistd.get("nodaemon", True) if twistd is not None else True
    if logfile == "-" or (nodaemon and not logfile):
        out: Any = sys.stdout
    else:
        out = LogFile.fromFullPath(logfile or "twistd.log")
    if format == "json":
        json_writer = jsonFileLogObserver(out, recordSeparator="")

        def writer(event: dict[str, Any]) -> None:
            # The sentence too, for readers that do not format events.
            json_writer({**event, "text": formatEvent(event)})
    else:
        writer = textFileLogObserver(out)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(writer, [predicate])


def _observers(observer: Any, seen: set[int]) -> Iterator[Any]:
    if id(observer) in seen:
        return
    seen.add(id(observer))
    yield observer
    # Publishers hold a list of observers; filters and wrappers hold one.
    for name in ("_observers", "_observer", "legacyObserver"):
        inner = getattr(observer, name, None)
        if isinstance(inner, (list, tuple)):
            for each in inner:
                yield from _observers(each, seen)
        elif inner is not None:
            yield from _observers(inner, seen)


def log_files(publisher: Any = globalLogPublisher) -> list[Any]:
    """
    The files (with a C{reopen} method: L{twisted.python.logfile.LogFile})
    that the observers of C{publisher} write to.
    """
    files = []
    for observer in _observers(publisher, set()):
        out = getattr(observer, "_outFile", None)
        if out is not None and callable(getattr(out, "reopen", None)):
            if all(out is not f for f in files):
                files.append(out)
    return files


def reopen_log_files(publisher: Any = globalLogPublisher) -> list[str]:
    """
    Close and reopen every log file, at its path (standard output is left
    as it is).

    @return: the paths reopened.
    """
    paths = []
    for out in log_files(publisher):
        out.reopen()
        paths.append(getattr(out, "path", repr(out)))
    return paths

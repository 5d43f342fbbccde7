"""
The daemon's log files: finding the files twistd logs to, so that an
operator's log rotation (C{logrotate} moving the file, then C{SIGHUP}) makes
soukets write to a fresh file at the same path.
"""

from __future__ import annotations

from typing import Any, Iterator

from twisted.logger import globalLogPublisher


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

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
    FileLogObserver,
    ILogObserver,
    LogLevel,
    eventAsJSON,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    globalLogPublisher,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

LEVELS = ("debug", "info", "warn", "error", "critical")

# The lowest level the daemon's log keeps (L{make_observer} sets it); until
# then, every event may be observed (by a test's observer, say).
_lowest = LogLevel.debug


def enabled(level: LogLevel) -> bool:
    """
    Whether the daemon's log keeps events of C{level}: a frequent event
    (a debug line per lobby or connection) is not even emitted otherwise,
    since emitting an event costs a few microseconds that its filtering
    does not give back.
    """
    return level >= _lowest


@implementer(ILogObserver)
class LevelFilter:
    """
    Passes on the events of C{lowest} level and above that name a
    namespace: what C{FilteringLogObserver} with a
    C{LogLevelFilterPredicate} of one default level does, in one set
    lookup per event (the daemon has no levels per namespace).
    """

    def __init__(self, observer: ILogObserver, lowest: LogLevel) -> None:
        self._observer = observer
        self._levels = frozenset(
            level for level in LogLevel.iterconstants() if level >= lowest
        )

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_level") in self._levels and event.get("log_namespace"):
            self._observer(event)


def _sentence(event: dict[str, Any]) -> str:
    """
    C{formatEvent(event)}, by C{str.format_map} (C) where that gives the
    same text: a format with no call in it (Twisted's formatter alone
    reads C{{f()}} as a call); anything else, or any failure, takes
    Twisted's own path.
    """
    format = event.get("log_format")
    if type(format) is str and "()" not in format and "log_flattened" not in event:
        try:
            return format.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


class ClassicText:
    """
    Twisted's classic text line (C{formatEventAsClassicLogText}: time,
    C{[system]}, the event's sentence), made cheaper for the common event:
    the time stamp, to the second, is formatted once a second, and the
    system once per namespace and level.  An event with a traceback takes
    Twisted's own path.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._stamp = ""
        self._systems: dict[tuple[str, Any], str] = {}

    def __call__(self, event: dict[str, Any]) -> str | None:
        if "log_failure" in event or "log_system" in event:
            return formatEventAsClassicLogText(event)
        text = _sentence(event)
        if not text:
            return None
        when = event.get("log_time")
        if when is None:
            stamp = "-"
        elif int(when) == self._second:
            stamp = self._stamp
        else:
            self._second, self._stamp = int(when), formatTime(when)
            stamp = self._stamp
        key = (event.get("log_namespace", "-"), event.get("log_level"))
        system = self._systems.get(key)
        if system is None:
            level = key[1].name if key[1] is not None else "-"
            system = self._systems[key] = f"[{key[0]}#{level}]"
            if len(self._systems) > 1000:  # (namespaces are few; stay bounded anyway)
                self._systems.clear()
        if "\n" in text:
            text = text.replace("\n", "\n\t")
        return f"{stamp} {system} {text}\n"


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
        def as_json(event: dict[str, Any]) -> str:
            # The sentence too, for readers that do not format events.
            return eventAsJSON({**event, "text": formatEvent(event)}) + "\n"

        # (An observer that holds its file, so that log_files finds it.)
        writer = FileLogObserver(out, as_json)
    else:
        writer = FileLogObserver(out, ClassicText())
    global _lowest
    _lowest = LogLevel.levelWithName(level)
    return LevelFilter(writer, _lowest)


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

"""
What each signal does to a running daemon, as a service: installed when the
daemon starts, the previous handlers put back when it stops.

- C{SIGTERM}, C{SIGINT} (Twisted's own handlers) and C{SIGQUIT}: stop
  gracefully, as the protocol says (C{game_over} with reason C{shutdown},
  C{bye}, the counter record removed), and exit 0.
- C{SIGHUP} and C{SIGUSR1}: reopen the log file (after C{logrotate} moved
  it); the daemon goes on.
- C{SIGUSR2} and C{SIGALRM}: logged and ignored, rather than the default of
  dying on the spot.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger

from soukets.logs import reopen_log_files

STOP = (signal.SIGQUIT,)
REOPEN = (signal.SIGHUP, signal.SIGUSR1)
IGNORE = (signal.SIGUSR2, signal.SIGALRM)


class SignalService(Service):
    """
    Installs soukets' signal handlers on C{reactor} (an
    L{IReactorCore<twisted.internet.interfaces.IReactorCore>} with
    C{callFromThread}); handlers only hand the work to the reactor.
    """

    name = "signals"
    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._previous: dict[int, Any] = {}

    def startService(self) -> None:
        super().startService()
        for signum, action in (
            *((s, self._stop) for s in STOP),
            *((s, self._reopen) for s in REOPEN),
            *((s, self._ignore) for s in IGNORE),
        ):
            self._install(signum, action)
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            # Started in the background by a shell, SIGINT comes ignored,
            # and Twisted then leaves it so; a daemon should stop on it.
            self._install(signal.SIGINT, self._stop)

    def stopService(self) -> None:
        super().stopService()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _install(self, signum: int, action: Callable[[int], None]) -> None:
        def handler(number: int, frame: Any) -> None:
            self._reactor.callFromThread(action, number)

        self._previous.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, handler)

    def _stop(self, signum: int) -> None:
        self.log.info(
            "received {signal}: stopping", signal=signal.Signals(signum).name
        )
        try:
            self._reactor.stop()
        except ReactorNotRunning:
            pass

    def _reopen(self, signum: int) -> None:
        paths = reopen_log_files()
        self.log.info(
            "received {signal}: log file(s) reopened: {paths}",
            signal=signal.Signals(signum).name,
            paths=", ".join(map(str, paths)) or "none (logging to standard output)",
        )

    def _ignore(self, signum: int) -> None:
        self.log.info(
            "received {signal}: ignored", signal=signal.Signals(signum).name
        )

"""
The reactor the C{soukets} command runs on: Twisted's epoll reactor, less
the legacy log context it sets up around every ready descriptor.

Twisted's poll-based reactors call each ready descriptor's C{doRead} or
C{doWrite} through C{twisted.python.log.callWithLogger}, which copies two
dictionaries and pushes a context for the old C{twisted.python.log} API's
C{system} field, about 1.7 µs each time on the machine of
C{bench/README.rst}: a tenth of the server's CPU a relayed message in
C{bench/run.py}'s C{pairs}, where every message is a read of its own.
soukets logs with C{twisted.logger}, which never reads that context.

L{SouketsReactor} is C{EPollReactor} with only C{doPoll} replaced, by the
same loop without that wrapper: descriptors, timers, threads, signals and
every other part are Twisted's own (Twisted's reactor tests run against it
in C{tests/test_reactor.py}).  What changes for an operator: when a
protocol raises while Twisted reads its socket, Twisted's report of it
(through the old logging API) shows C{[-]} in its C{[system]} field where
the default reactor shows the connection (C{[SouketsProtocol,12,127.0.0.1]});
soukets' own log lines never carried it.

Select it with C{twistd --reactor=soukets}; the C{soukets} command does so
itself (see L{soukets.cli}).  If this Twisted's epoll reactor lacks the
parts it builds on, it runs Twisted's own loop.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.main import installReactor
from twisted.python import log


class SouketsReactor(EPollReactor):
    """
    Twisted's epoll reactor, dispatching ready descriptors without the
    legacy log context (see the module's docstring).
    """

    def __init__(self) -> None:
        super().__init__()
        if not self.lean:
            # A Twisted without the parts the loop below builds on: its own
            # loop, then.
            self.doPoll = self.doIteration = super().doPoll  # type: ignore[method-assign]

    @property
    def lean(self) -> bool:
        """
        Whether this reactor dispatches without the log context: whether
        Twisted's epoll reactor has the parts L{doPoll} builds on (its
        poller, its table of descriptors, its handler of one ready
        descriptor).
        """
        return (
            callable(getattr(self, "_doReadOrWrite", None))
            and hasattr(getattr(self, "_poller", None), "poll")
            and isinstance(getattr(self, "_selectables", None), dict)
        )

    def doPoll(self, timeout: float | None) -> None:
        """
        Wait up to C{timeout} seconds for ready descriptors and handle each,
        as C{EPollReactor.doPoll} does.
        """
        if timeout is None:
            timeout = -1  # wait until something is ready
        try:
            ready = self._poller.poll(timeout, len(self._selectables))
        except OSError as error:
            if error.errno == errno.EINTR:
                return
            raise
        handle = self._doReadOrWrite
        selectables = self._selectables
        for fd, event in ready:
            selectable = selectables.get(fd)
            if selectable is None:
                continue  # (closed by a descriptor handled before it)
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                # As callWithLogger does, with its system computed only now.
                log.err(system=_log_prefix(selectable))

    doIteration = doPoll


def _log_prefix(selectable: Any) -> str:
    try:
        return str(selectable.logPrefix())
    except BaseException:
        return "(buggy logPrefix method)"


def install() -> None:
    """
    Install L{SouketsReactor} as the global reactor.
    """
    installReactor(SouketsReactor())

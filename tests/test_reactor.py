"""
Tests for L{soukets.reactor}: Twisted's own reactor tests run against
L{SouketsReactor}, and what it does differently (no log context around a
ready descriptor, a failure escaping one descriptor's handler logged with
that descriptor's name while the others are still handled).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from twisted.internet import abstract
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.test import test_core, test_fdset, test_tcp, test_threads, test_time
from twisted.internet.test.reactormixins import ReactorBuilder
from twisted.python import context, log
from twisted.python.failure import Failure
from twisted.trial.runner import TestLoader
from twisted.trial.unittest import SynchronousTestCase, TestSuite

from soukets import cli
from soukets.reactor import SouketsReactor

THIS_REACTOR = ["soukets.reactor.SouketsReactor"]

# Twisted's tests of a reactor's descriptors, TCP, timers, threads and
# system events, each builder made into a test case for SouketsReactor alone.
for _builder in (
    test_fdset.ReactorFDSetTestsBuilder,
    test_tcp.TCP4ClientTestsBuilder,
    test_tcp.TCP4ConnectorTestsBuilder,
    test_tcp.TCPPortTestsBuilder,
    test_tcp.TCPConnectionTestsBuilder,
    test_tcp.TCPTransportTestsBuilder,
    test_tcp.AbortConnectionTests,
    test_time.TimeTestsBuilder,
    test_threads.ThreadTestsBuilder,
    test_core.SystemEventTestsBuilder,
):
    _ours = type(_builder.__name__, (_builder,), {"_reactors": THIS_REACTOR, "__module__": __name__})
    globals().update(_ours.makeTestCaseClasses())
del _builder, _ours

NOT_APPLICABLE = {
    # Twisted's own check that a protocol's dataReceived runs in a log
    # context naming it: the one thing SouketsReactor does differently, on
    # purpose (DispatchTests.test_no_log_context checks what it does).
    "test_logPrefix",
    # Twisted skips it for its epoll reactor, whose limitation it is (epoll
    # forgets a closed descriptor without a word, so a descriptor replaced
    # under the reactor is never seen); it recognises that reactor by its
    # class name, so here it would run, and wait forever.
    "test_lostFileDescriptor",
}


def testSuite() -> TestSuite:
    """
    This module's tests, less Twisted's tests in L{NOT_APPLICABLE} (trial
    calls this in place of collecting the module's test cases itself).
    """
    loader = TestLoader()
    suite = loader.suiteFactory()
    for case in loader.findTestClasses(sys.modules[__name__]):
        names = [loader.methodPrefix + name for name in loader.getTestCaseNames(case)]
        suite.addTest(loader.suiteFactory(
            [case(name) for name in sorted(names) if name not in NOT_APPLICABLE]))
    return suite


class Ready(abstract.FileDescriptor):
    """
    One end of a socket pair with data waiting: C{doRead} records the log
    context it runs in and, if C{fails}, ends the descriptor with a
    C{connectionLost} that raises.
    """

    def __init__(self, reactor: Any, name: str, fails: bool = False) -> None:
        super().__init__(reactor)
        self.name = name
        self.fails = fails
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.peer.send(b"x")
        self.contexts: list[Any] = []
        self.lost = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return self.name

    def doRead(self) -> Any:
        self.contexts.append(context.get(log.ILogContext).get("system"))
        self.sock.recv(1)
        return Exception("done") if self.fails else None

    def connectionLost(self, reason: Failure) -> None:
        self.lost = True
        if self.fails:
            raise RuntimeError(f"{self.name} fails as it closes")

    def close(self) -> None:
        self.sock.close()
        self.peer.close()


class DispatchTests(ReactorBuilder, SynchronousTestCase):
    """
    How L{SouketsReactor} hands ready descriptors to their handlers.
    """

    reactorFactory = SouketsReactor

    def setUp(self) -> None:
        super().setUp()
        self.reactor = self.buildReactor()

    def ready(self, name: str, fails: bool = False) -> Ready:
        descriptor = Ready(self.reactor, name, fails)
        self.addCleanup(descriptor.close)
        self.reactor.addReader(descriptor)
        self.addCleanup(self.reactor.removeReader, descriptor)
        return descriptor

    def test_lean_on_this_twisted(self) -> None:
        """
        This Twisted's epoll reactor has what the lean loop builds on.
        """
        self.assertTrue(self.reactor.lean)
        self.assertEqual(self.reactor.doIteration, self.reactor.doPoll)
        self.assertEqual(self.reactor.doPoll.__func__, SouketsReactor.doPoll)

    def test_no_log_context(self) -> None:
        """
        A ready descriptor's C{doRead} runs without a log context of its own,
        where Twisted's reactor would have pushed one naming it.
        """
        descriptor = self.ready("quiet")
        self.reactor.doPoll(0)
        self.assertEqual(descriptor.contexts, ["-"])

    def test_failure_logged_and_others_handled(self) -> None:
        """
        A failure that escapes a descriptor's handler is logged with the
        descriptor's name, and the other ready descriptors are still handled
        in the same poll.
        """
        first = self.ready("first", fails=True)
        second = self.ready("second")
        events: list[dict[str, Any]] = []
        log.addObserver(events.append)
        self.addCleanup(log.removeObserver, events.append)
        self.reactor.doPoll(0)
        [failure] = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(failure.getErrorMessage(), "first fails as it closes")
        self.assertTrue(first.lost)
        self.assertEqual(second.contexts, ["-"])
        self.assertIn("first", [e.get("system") for e in events if e.get("isError")])

    def test_twisteds_loop_without_the_parts(self) -> None:
        """
        On a Twisted whose epoll reactor lacks what the lean loop builds on
        (here: its handler of one ready descriptor), the reactor runs
        Twisted's own loop, which still dispatches.
        """

        class Older(SouketsReactor):
            _doReadOrWrite = None  # type: ignore[assignment]

        self.reactorFactory = Older  # type: ignore[assignment]
        older = self.buildReactor()
        self.assertFalse(older.lean)
        self.assertEqual(older.doPoll.__func__, EPollReactor.doPoll)
        self.assertEqual(older.doIteration, older.doPoll)


class CommandTests(SynchronousTestCase):
    """
    The C{soukets} command runs on L{SouketsReactor}.
    """

    def test_twistd_argv(self) -> None:
        self.assertEqual(
            cli.twistd_argv(["--max-clients=20"]),
            ["twistd", "--nodaemon", "--pidfile=", "--reactor=soukets", "soukets",
             "--max-clients=20"],
        )

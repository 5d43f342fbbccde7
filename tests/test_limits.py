"""
Tests for L{soukets.limits} and the limits as a session applies them:
floods and idle connections, on a L{task.Clock}.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from soukets.limits import FloodGuard, FloodVerdict, TokenBucket
from soukets.server import ServerSettings

from tests.support import Harness


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=10, burst=3, clock=clock)
        self.assertEqual([bucket.take() for _ in range(4)], [True, True, True, False])
        clock.advance(0.1)
        self.assertEqual([bucket.take() for _ in range(2)], [True, False])
        clock.advance(100)
        self.assertEqual(sum(bucket.take() for _ in range(10)), 3)

    def test_time_handed_in(self) -> None:
        """
        A caller that has just read the clock may hand the time in: the
        bucket counts from it as from its own reading.
        """
        clock = Clock()
        bucket = TokenBucket(rate=10, burst=3, clock=clock)
        self.assertEqual([bucket.take(0.0) for _ in range(4)], [True, True, True, False])
        self.assertEqual([bucket.take(0.1) for _ in range(2)], [True, False])
        guard = FloodGuard(rate=1, burst=1, clock=clock)
        self.assertEqual([guard.check(0.0), guard.check(0.0), guard.check(0.5)],
                         [FloodVerdict.ACCEPT, FloodVerdict.WARN, FloodVerdict.DROP])
        self.assertIs(guard.check(1.5), FloodVerdict.ACCEPT)


class FloodGuardTests(SynchronousTestCase):
    def test_warn_once_a_second_then_disconnect(self) -> None:
        clock = Clock()
        guard = FloodGuard(rate=1, burst=1, clock=clock)
        self.assertIs(guard.check(), FloodVerdict.ACCEPT)
        self.assertIs(guard.check(), FloodVerdict.WARN)
        self.assertIs(guard.check(), FloodVerdict.DROP)
        verdicts = []
        for _ in range(6):
            clock.advance(1.0)
            guard.check()  # the token earned this second
            verdicts.append(guard.check())
        self.assertEqual(verdicts[:4], [FloodVerdict.WARN] * 4)
        self.assertIs(verdicts[4], FloodVerdict.DISCONNECT)

    def test_calm_resets(self) -> None:
        clock = Clock()
        guard = FloodGuard(rate=1, burst=1, clock=clock)
        for _ in range(20):
            guard.check(), guard.check()
            clock.advance(3)  # calm for longer than 2 s
        self.assertIsNot(guard.check(), FloodVerdict.DISCONNECT)


class SessionFloodTests(SynchronousTestCase):
    def test_flood(self) -> None:
        """
        Over the rate, frames are dropped with one rate_limited error a
        second; the connection still answers once calm; a flood that goes
        on is cut off.
        """
        h = Harness(ServerSettings(auto_queue=False, max_rate=10, rate_burst=10))
        session = h.connect()
        h.frames(session)
        session.data_received(b';{"type":"ping"}\n' * 50)
        frames = h.frames(session)
        self.assertEqual([b["type"] for _, b in frames], ["pong"] * 10 + ["error"])
        self.assertEqual(frames[-1][1]["code"], "rate_limited")
        h.clock.advance(1)
        self.assertEqual(h.send(session, ';{"type":"ping"}'), [("", {"type": "pong"})])
        for _ in range(8):
            h.clock.advance(1)
            session.data_received(b';{"type":"ping"}\n' * 50)
        self.assertIn(session.client_id, h.disconnected)
        self.assertNotIn(session.client_id, h.server.sessions)

    def test_others_unaffected(self) -> None:
        h = Harness(ServerSettings(auto_queue=False, max_rate=5, rate_burst=5))
        flooder, calm = h.connect(), h.connect()
        flooder.data_received(b'room;{"type":"publish","data":1}\n' * 1000)
        self.assertEqual(h.send(calm, ';{"type":"ping"}'), [("", {"type": "pong"})])


class IdleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(ServerSettings(idle_timeout=60))
        self.session = self.h.connect()
        self.h.frames(self.session)

    def test_ping_then_drop(self) -> None:
        self.h.clock.advance(29)
        self.assertEqual(self.h.frames(self.session), [])
        self.h.clock.advance(1)
        self.assertEqual(self.h.frames(self.session), [("", {"type": "ping"})])
        self.h.clock.advance(29)
        self.assertEqual(self.h.disconnected, [])
        self.h.clock.advance(1)
        self.assertEqual(self.h.disconnected, [self.session.client_id])
        # Pinged once only; told why before the drop.
        self.assertEqual(self.h.frames(self.session), [("", {"type": "bye", "reason": "idle"})])
        self.assertEqual(self.h.server.lobbies.waiting, 0)  # never matched now
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_pong_counts(self) -> None:
        self.h.clock.advance(30)
        self.h.send(self.session, ';{"type":"pong"}')
        self.h.clock.advance(59)
        self.assertEqual(self.h.disconnected, [])
        self.assertEqual(self.h.frames(self.session), [("", {"type": "ping"})])
        self.h.clock.advance(31)
        self.assertEqual(self.h.disconnected, [self.session.client_id])
        self.assertEqual(self.h.frames(self.session), [("", {"type": "bye", "reason": "idle"})])

    def test_off_by_default(self) -> None:
        h = Harness()
        h.connect()
        self.assertEqual(h.clock.getDelayedCalls(), [])

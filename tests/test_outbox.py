"""
Tests for L{soukets.outbox}, and for the runs the hub builds with it: a
receiver sees exactly the bytes, in exactly the order, it would see if every
message were handed to it on its own.
"""

from __future__ import annotations

from hypothesis import example, given, settings, strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from soukets.hub import ChannelHub
from soukets.outbox import Outbox, Run, next_turn

from tests.support import Recorder


class OutboxTests(SynchronousTestCase):
    def test_order(self) -> None:
        outbox = Outbox()
        run = Run([b"m1\n"])
        outbox.add(b"a\n")
        outbox.add(run)
        run.add(b"m2\n")
        outbox.add(b"b\n")
        self.assertEqual(outbox.take(), b"a\nm1\nm2\nb\n")
        self.assertFalse(outbox)
        self.assertEqual(outbox.take(), b"")

    def test_first_owed_and_counted(self) -> None:
        """
        C{add} says whether it was the first thing owed; C{take_frames}
        gives the bytes and how many frames, a lone frame as it is.
        """
        outbox = Outbox()
        frame = b"a\n"
        self.assertEqual([outbox.add(frame), outbox.add(b"b\n")], [True, False])
        self.assertEqual(outbox.take_frames(), (b"a\nb\n", 2))
        self.assertTrue(outbox.add(frame))
        data, count = outbox.take_frames()
        self.assertIs(data, frame)
        self.assertEqual(count, 1)
        self.assertTrue(outbox.add(Run([b"m1\n", b"m2\n"])))
        self.assertEqual(outbox.take_frames(), (b"m1\nm2\n", 2))
        self.assertTrue(outbox.add(frame))
        self.assertEqual(outbox.take_frames(lambda f: b"<" + f + b">"), (b"<a\n>", 1))

    def test_sealed_when_followed(self) -> None:
        """
        A run that something else follows in an outbox takes no more
        messages: they would jump ahead of that something.
        """
        outbox = Outbox()
        run = Run([b"m1\n"])
        outbox.add(run)
        self.assertFalse(run.sealed)
        outbox.add(b"reply\n")
        self.assertTrue(run.sealed)
        self.assertRaises(AssertionError, run.add, b"m2\n")

    def test_sealed_when_taken(self) -> None:
        """
        A run is joined once, when the first of its receivers takes it, and
        is sealed from then on.
        """
        run = Run([b"m1\n", b"m2\n"])
        first, second = Outbox(), Outbox()
        first.add(run)
        second.add(run)
        data = first.take()
        self.assertTrue(run.sealed)
        self.assertIs(second.take(), data)

    def test_next_turn(self) -> None:
        clock = Clock()
        delivered: list[bytes] = []
        output = next_turn(clock, delivered.append)
        run = Run([b"m1\n"])
        output(run)
        run.add(b"m2\n")
        output(b"x\n")
        self.assertEqual(delivered, [])
        clock.advance(0)
        self.assertEqual(delivered, [b"m1\nm2\nx\n"])
        output(b"y\n")
        clock.advance(0)
        self.assertEqual(delivered, [b"m1\nm2\nx\n", b"y\n"])


RECEIVERS = 3
CHANNELS = ("a", "b")
KINDS = ["publish"] * 4 + ["subscribe"] * 2 + ["reply"] * 2 + [
    "unsubscribe", "flush", "drop", "close"]
# (kind, client, channel); mostly publishes on one busy channel.
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, RECEIVERS - 1),
              st.sampled_from(("a", "a", "a", "b"))),
    min_size=10,
    max_size=60,
)


class RunProperties(SynchronousTestCase):
    @settings(max_examples=1000, deadline=None)
    @given(OPERATIONS)
    # A reply between two messages of a run: the second must come after it.
    @example([("subscribe", 0, "a"), ("subscribe", 1, "a"), ("publish", 1, "a"),
              ("reply", 0, "a"), ("publish", 1, "a")])
    # A member leaves, comes back: it gets nothing published in between.
    @example([("subscribe", 0, "a"), ("subscribe", 1, "a"), ("publish", 1, "a"),
              ("unsubscribe", 0, "a"), ("publish", 1, "a"), ("subscribe", 0, "a"),
              ("publish", 1, "a")])
    def test_same_bytes_as_one_by_one(self, operations: list[tuple[str, int, str]]) -> None:
        """
        Whatever the mix of publishes, replies, membership changes and
        flushes, each receiver gets the bytes that handing it every frame on
        its own would give, and publish counts the same receivers.
        """
        hub = ChannelHub()
        clients = [Recorder(f"c-{i}") for i in range(RECEIVERS)]
        got = [b""] * RECEIVERS
        expected = [b""] * RECEIVERS
        members: dict[str, set[int]] = {name: set() for name in CHANNELS}
        for number, (kind, i, name) in enumerate(operations):
            if kind == "subscribe":
                hub.subscribe(name, clients[i])
                members[name].add(i)
            elif kind == "unsubscribe":
                if i in members[name]:
                    hub.unsubscribe(name, clients[i])
                    members[name].discard(i)
            elif kind == "publish":
                receivers = hub.publish(name, clients[i], number)
                frame = ('%s;{"type":"message","from":"c-%d","data":%d}\n'
                         % (name, i, number)).encode()
                others = members[name] - {i}
                for j in others:
                    expected[j] += frame
                self.assertEqual(receivers, len(others))
            elif kind == "reply":
                reply = b';{"type":"pong","n":%d}\n' % number
                clients[i].send(reply)
                expected[i] += reply
            elif kind == "flush":
                got[i] += clients[i].received.take()
            elif kind == "drop":
                hub.drop(clients[i])
                for other in CHANNELS:
                    members[other].discard(i)
            else:
                hub.close(name)
                members[name].clear()
        for i in range(RECEIVERS):
            got[i] += clients[i].received.take()
        self.assertEqual(got, expected)

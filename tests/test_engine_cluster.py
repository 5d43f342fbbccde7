"""
The parts of a cluster node that need no Redis (L{soukets.engines.cluster}),
and the engine URL (L{soukets.engines.parse_engine}).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from soukets.engines import EngineURLError, RedisAddress, parse_engine
from soukets.engines.cluster import (
    MAX_COUNTED_CHANNELS,
    MESSAGE,
    GapCounter,
    Liveness,
    NodeBatch,
    Sequences,
    Subscriptions,
    decode_channel_message,
    decode_node_message,
    encode_channel_message,
    owner_of,
)
from soukets.outbox import Run


class EngineURLTests(SynchronousTestCase):
    def test_local(self) -> None:
        self.assertIsNone(parse_engine("local"))

    def test_redis(self) -> None:
        self.assertEqual(parse_engine("redis://10.0.0.5:6380/2"), RedisAddress("10.0.0.5", 6380, 2))
        self.assertEqual(parse_engine("redis://localhost"), RedisAddress("localhost", 6379, 0))

    def test_password_user_and_tls(self) -> None:
        address = parse_engine("rediss://game:p%40ss@redis.example:6390/1")
        assert address is not None
        self.assertEqual(
            (address.username, address.password, address.tls, address.port, address.db),
            ("game", "p@ss", True, 6390, 1),
        )
        self.assertEqual(parse_engine("redis://:secret@h").password, "secret")  # type: ignore[union-attr]
        self.assertNotIn("secret", repr(parse_engine("redis://:secret@h")))
        self.assertNotIn("secret", str(parse_engine("redis://:secret@h")))

    def test_refused(self) -> None:
        for url in ("memcached://h", "redis://h:port", "redis://h/db", "redis://h/-1", "", "Local"):
            with self.subTest(url=url), self.assertRaises(EngineURLError):
                parse_engine(url)


class OwnerTests(SynchronousTestCase):
    def test_lobbies_and_tokens_name_their_node(self) -> None:
        self.assertEqual(owner_of("lobby:ab12.Zx9-_q"), "ab12")
        self.assertEqual(owner_of("ab12.secret"), "ab12")

    def test_without_a_node(self) -> None:
        for name in ("lobby:Zx9-_qQ", "secret", "lobby:.x", ".x", "lobby:"):
            self.assertIsNone(owner_of(name), name)


class ChannelMessageTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        frames = b'room;{"type":"message","from":"ab12-1","data":"a b\\n"}\nroom;{"type":"message","from":"ab12-1","data":2}\n'
        message = encode_channel_message("ab12", 3, 17, MESSAGE, frames)
        self.assertEqual(decode_channel_message(message), ("ab12", 3, 17, MESSAGE, frames))

    def test_garbage(self) -> None:
        for message in (b"", b"x\n", b"ab12 1 x m\n", b"ab12 1 2\n"):
            with self.assertRaises(ValueError):
                decode_channel_message(message)


class NodeBatchTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        batch = NodeBatch()
        self.assertFalse(batch)
        batch.add("ab12-1", {"op": "seat", "channel": "lobby:ab12.x"})
        batch.add("ab12-1", b"a;{}\n")
        batch.add("ab12-2", b"b;{}\nc;{}\n")
        self.assertTrue(batch)
        sender, records = decode_node_message(batch.encode("cd34"))
        self.assertEqual(sender, "cd34")
        self.assertEqual(
            records,
            [("ab12-1", {"op": "seat", "channel": "lobby:ab12.x"}), ("ab12-1", b"a;{}\n"), ("ab12-2", b"b;{}\nc;{}\n")],
        )

    def test_a_run_grows_until_sent_and_no_further(self) -> None:
        """
        A run handed to a batch keeps growing (what a channel sends in the
        same turn), unless anything was added after it: then it is sealed,
        so that nothing may pass ahead of what follows it.
        """
        run = Run([b"1\n"])
        batch = NodeBatch()
        batch.add("r", run)
        run.add(b"2\n")
        batch.add("s", run)  # the same run for another client of that node
        self.assertFalse(run.sealed)
        batch.add("r", {"op": "unseat"})
        self.assertTrue(run.sealed)
        _, records = decode_node_message(batch.encode("n"))
        self.assertEqual(records, [("r", b"1\n2\n"), ("s", b"1\n2\n"), ("r", {"op": "unseat"})])

    @given(st.lists(st.one_of(st.binary(max_size=20), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)), max_size=20))
    def test_any_records(self, records: list[object]) -> None:
        batch = NodeBatch()
        for i, record in enumerate(records):
            batch.add(f"r{i}", record)  # type: ignore[arg-type]
        _, decoded = decode_node_message(batch.encode("n"))
        self.assertEqual(decoded, [(f"r{i}", r) for i, r in enumerate(records)])

    def test_garbage(self) -> None:
        for message in (b"", b"{}\n", b'["n",[1,2]]\n', b'["n",["r","x"]]\n'):
            with self.assertRaises(ValueError):
                decode_node_message(message)


class SequenceTests(SynchronousTestCase):
    def test_per_channel(self) -> None:
        sequences = Sequences()
        self.assertEqual([sequences.next("a"), sequences.next("a"), sequences.next("b")], [(1, 1), (1, 2), (1, 1)])

    def test_bounded(self) -> None:
        sequences = Sequences()
        for i in range(MAX_COUNTED_CHANNELS):
            sequences.next(str(i))
        self.assertEqual(sequences.next("0"), (1, 2))
        self.assertEqual(sequences.next("new"), (2, 1))  # a new epoch, a fresh table
        self.assertEqual(sequences.next("0"), (2, 1))
        self.assertEqual(len(sequences._next), 2)

    def test_gaps(self) -> None:
        gaps = GapCounter()
        self.assertEqual(gaps.seen("n", "a", 1, 5), 0)  # the first one seen
        self.assertEqual(gaps.seen("n", "a", 1, 6), 0)
        self.assertEqual(gaps.seen("n", "a", 1, 9), 2)
        self.assertEqual(gaps.seen("m", "a", 1, 1), 0)  # another publisher
        self.assertEqual(gaps.seen("n", "a", 2, 1), 0)  # a new epoch
        self.assertEqual(gaps.missed, 2)
        gaps.forget_channel("a")
        self.assertEqual(gaps.seen("n", "a", 2, 10), 0)
        self.assertEqual(gaps.seen("m", "a", 1, 3), 0)
        gaps.forget_node("n")
        self.assertEqual(gaps.seen("n", "a", 2, 20), 0)
        self.assertEqual(gaps.seen("m", "a", 1, 5), 1)
        self.assertEqual(gaps.missed, 3)


class SubscriptionTests(SynchronousTestCase):
    def test_batched(self) -> None:
        subscriptions = Subscriptions()
        self.assertTrue(subscriptions.opened("a"))
        self.assertTrue(subscriptions.opened("b"))
        subscriptions.closed("b")  # never told to Redis
        self.assertEqual(subscriptions.take(), (["a"], []))
        subscriptions.closed("a")
        self.assertFalse(subscriptions.opened("a"))  # still subscribed in Redis
        self.assertEqual(subscriptions.take(), ([], []))
        subscriptions.closed("a")
        self.assertEqual(subscriptions.take(), ([], ["a"]))
        self.assertEqual(subscriptions.active, set())

    def test_everything_after_a_reconnect(self) -> None:
        subscriptions = Subscriptions()
        for name in "cab":
            subscriptions.opened(name)
        subscriptions.take()
        subscriptions.closed("b")
        self.assertEqual(subscriptions.everything(), ["a", "c"])
        self.assertEqual(subscriptions.take(), ([], []))

    @given(st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=40))
    def test_redis_ends_as_the_hub(self, changes: list[tuple[bool, str]]) -> None:
        """
        Whatever the hub opens and closes, and whenever the changes are
        sent, Redis ends up subscribed to exactly the open channels.
        """
        subscriptions, redis, open_ = Subscriptions(), set(), set()
        for i, (opening, name) in enumerate(changes):
            if opening and name not in open_:
                open_.add(name)
                subscriptions.opened(name)
            elif not opening and name in open_:
                open_.discard(name)
                subscriptions.closed(name)
            if i % 3 == 0:
                sub, unsub = subscriptions.take()
                redis |= set(sub)
                redis -= set(unsub)
        sub, unsub = subscriptions.take()
        redis = (redis | set(sub)) - set(unsub)
        self.assertEqual(redis, open_)
        self.assertEqual(subscriptions.active, open_)


class LivenessTests(SynchronousTestCase):
    def test_dead_when_gone_from_the_live_set(self) -> None:
        liveness = Liveness(grace=7)
        self.assertEqual(liveness.update({"a", "b"}, 100), set())
        self.assertEqual(liveness.update({"a"}, 101), {"b"})
        self.assertEqual(liveness.update({"a"}, 102), set())  # once

    def test_nobody_dies_right_after_a_reconnect(self) -> None:
        liveness = Liveness(grace=7)
        liveness.update({"a", "b"}, 100)
        liveness.reconnected(200)
        self.assertEqual(liveness.update({"a"}, 201), set())  # b's beat may come
        self.assertEqual(liveness.update({"a", "c"}, 203), set())
        self.assertEqual(liveness.update({"a", "c"}, 208), {"b"})

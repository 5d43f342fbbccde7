"""
The Redis engine against a real C{redis-server}: its Lua scripts under
concurrent callers, heartbeats and the purge of a dead node, and engines
running in this process (several nodes on one reactor, with in-memory
clients) through a killed connection, a lost Redis and a slow one.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from soukets.engines import parse_engine
from soukets.engines.cluster import MESSAGE, encode_channel_message
from soukets.engines.redis import DEAD_MS, FRESH_MS, EngineState, RedisEngine, reserve_node
from soukets.engines.store import BEAT_SCRIPT, JOIN_SCRIPT, PURGE_SCRIPT, QUEUE_SCRIPT, Keys
from soukets.server import Server, ServerSettings
from tests.redis import RedisConnection, RedisServer
from tests.support import Harness

K = Keys()


def beat(redis: Any, node: str, clients: int = 0) -> Any:
    return redis.call("EVAL", BEAT_SCRIPT, 2, K.nodes, K.node_info, node, clients, DEAD_MS)


def queue(redis: Any, *entries: str, size: int = 2, mode: str = "full") -> Any:
    arrivals = [x for entry in entries for x in (entry, json.dumps([entry, entry]))]
    return redis.call(
        "EVAL", QUEUE_SCRIPT, 4, K.queue, K.arrivals, K.entries, K.nodes,
        size, FRESH_MS, mode, *arrivals,
    )


class ScriptTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.redis = RedisServer(self.mktemp())
        self.addCleanup(self.redis.stop)

    def test_queue_under_concurrent_callers(self) -> None:
        """
        Eight connections queue 150 players each, all at once: no player
        is taken twice or lost, each group is taken in arrival order, and
        groups follow one another (the queue is first come, first served).
        """
        for node in "abcdefgh":
            beat(self.redis, node * 4)
        groups: list[list[Any]] = []
        lock = threading.Lock()

        def caller(node: str) -> None:
            connection = RedisConnection(self.redis)
            try:
                for i in range(150):
                    _, taken = queue(connection, f"{node * 4}|{node}-{i}", size=3)
                    if taken:
                        with lock:
                            groups.append(taken)
            finally:
                connection.close()

        threads = [threading.Thread(target=caller, args=(node,)) for node in "abcdefgh"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        taken = [entry for group in groups for entry in group[0::3]]
        self.assertEqual(len(taken), len(set(taken)))
        self.assertEqual(len(taken), 8 * 150)  # 1,200 = 400 groups of 3
        scores = [[int(s) for s in group[1::3]] for group in groups]
        for group in scores:
            self.assertEqual(group, sorted(group))
        ordered = sorted(scores)
        for before, after in zip(ordered, ordered[1:]):
            self.assertLess(before[-1], after[0])
        self.assertEqual(self.redis.call("ZCARD", K.queue), 0)
        self.assertEqual(self.redis.call("HLEN", K.entries), 0)

    def test_entries_of_a_silent_node_are_passed_over(self) -> None:
        beat(self.redis, "live")
        beat(self.redis, "mute")
        self.redis.call("ZADD", K.nodes, 1, "mute")  # its last beat: long ago
        self.assertEqual(queue(self.redis, "mute|m-1")[1], [])
        self.assertEqual(queue(self.redis, "live|l-1")[1], [])
        waiting, taken = queue(self.redis, "live|l-2")
        self.assertEqual(waiting, [3])
        self.assertEqual(taken[0::3], [b"live|l-1", b"live|l-2"])
        self.assertEqual(self.redis.call("ZRANGE", K.queue, 0, -1), [b"mute|m-1"])

    def test_take_for_bots(self) -> None:
        beat(self.redis, "live")
        self.assertEqual(queue(self.redis, mode="any")[1], [])  # nobody
        queue(self.redis, "live|l-1", size=3)
        _, taken = queue(self.redis, size=3, mode="any")
        self.assertEqual(taken[0::3], [b"live|l-1"])

    def test_one_turns_arrivals_at_once(self) -> None:
        """
        A node sends a turn's arrivals in one call: each is told how many
        wait, and every lobby they complete is taken, in order.
        """
        beat(self.redis, "live")
        queue(self.redis, "live|a")
        waitings, taken = queue(self.redis, "live|b", "live|c", "live|d", "live|e")
        self.assertEqual(waitings, [2, 3, 4, 5])
        self.assertEqual(taken[0::3], [b"live|a", b"live|b", b"live|c", b"live|d"])
        self.assertEqual(self.redis.call("ZRANGE", K.queue, 0, -1), [b"live|e"])

    def test_heartbeat_and_purge(self) -> None:
        self.assertEqual(beat(self.redis, "aaaa", 3)[0], 1)
        added, live, stale = beat(self.redis, "bbbb", 4)
        self.assertEqual((added, sorted(live), stale), (1, [b"aaaa", b"bbbb"], []))
        self.assertEqual(beat(self.redis, "aaaa", 3)[0], 0)
        queue(self.redis, "aaaa|a-1", size=3)
        queue(self.redis, "bbbb|b-1", size=3)
        self.redis.call("HSET", K.games, "lobby:aaaa.x", "{}", "lobby:bbbb.y", "{}")
        self.redis.call("EVAL", JOIN_SCRIPT, 2, K.members("room"), K.node_channels("aaaa"), "aaaa|a-2", "[]", "room")
        self.redis.call("EVAL", JOIN_SCRIPT, 2, K.members("room"), K.node_channels("bbbb"), "bbbb|b-2", "[]", "room")
        self.redis.call("ZADD", K.nodes, 1, "aaaa")  # aaaa stops beating
        _, live, stale = beat(self.redis, "bbbb", 4)
        self.assertEqual((live, stale), ([b"bbbb"], [b"aaaa"]))
        purge = (PURGE_SCRIPT, 6, K.nodes, K.node_info, K.queue, K.entries, K.games, K.node_channels("aaaa"), "aaaa", K.members(""))
        self.assertEqual(self.redis.call("EVAL", *purge), 1)
        self.assertEqual(self.redis.call("EVAL", *purge), 0)  # one purger only
        self.assertEqual(self.redis.call("ZRANGE", K.queue, 0, -1), [b"bbbb|b-1"])
        self.assertEqual(self.redis.call("HKEYS", K.games), [b"lobby:bbbb.y"])
        self.assertEqual(self.redis.call("HKEYS", K.members("room")), [b"bbbb|b-2"])
        self.assertEqual(self.redis.call("HKEYS", K.node_info), [b"bbbb"])

    def test_node_ids_are_unique(self) -> None:
        address = parse_engine(self.redis.url)
        assert address is not None
        ids = {reserve_node(address, K) for _ in range(50)}
        self.assertEqual(len(ids), 50)
        self.assertEqual(self.redis.call("ZCARD", K.nodes), 50)


class Node:
    """
    A server with the Redis engine, in this process, on the reactor; its
    clients are in-memory sessions.
    """

    def __init__(self, case: TestCase, redis: RedisServer, **settings: Any) -> None:
        address = parse_engine(redis.url)
        assert address is not None
        node = reserve_node(address, K)
        self.server = Server(ServerSettings(**settings), reactor, prefix=node)
        self.engine = RedisEngine(address, node, reactor)
        self.engine.attach(self.server)
        self.engine.startService()
        case.addCleanup(self.engine.stop)
        case.addCleanup(self.server.lobbies.stopService)  # (first: its games' timers)
        self.harness = Harness(self.server.settings, reactor, self.server)
        self.seen: dict[Any, list[tuple[str, dict[str, Any]]]] = {}

    def connect(self, *lines: str) -> Any:
        session = self.harness.connect()
        self.seen[session] = []
        for line in lines:
            session.data_received(line.encode() + b"\n")
        return session

    def frames(self, session: Any) -> list[tuple[str, dict[str, Any]]]:
        self.seen[session] += self.harness.frames(session)
        return self.seen[session]

    def types(self, session: Any) -> list[str]:
        return [body["type"] for _, body in self.frames(session)]


@inlineCallbacks
def until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    waited = 0.0
    while not check():
        if waited > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        yield deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


class EngineTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.redis = RedisServer(self.mktemp())
        self.addCleanup(self.redis.stop)

    def node(self, **settings: Any) -> Node:
        return Node(self, self.redis, **settings)

    @inlineCallbacks
    def test_resubscribes_and_counts_what_was_lost(self) -> Any:
        node = self.node(auto_queue=False)
        yield until(lambda: node.engine.up, "engine up")
        client = node.connect('room;{"type":"subscribe"}')
        yield until(lambda: "subscribed" in node.types(client), "subscribed")

        def publish(seq: int) -> None:
            frame = b'room;{"type":"message","from":"zzzz-1","data":%d}\n' % seq
            self.redis.call("PUBLISH", K.channel("room"), encode_channel_message("zzzz", 1, seq, MESSAGE, frame))

        publish(1)
        yield until(lambda: node.types(client).count("message") == 1, "message 1")
        # What Redis says of the channel the moment the engine says it is
        # back (a blocking call from the log observer, in that moment).
        subscribers_when_back: list[int] = []

        def when_back(event: dict) -> None:
            if str(event.get("log_format", "")).startswith("engine: Redis is back"):
                subscribers_when_back.append(
                    self.redis.call("PUBSUB", "NUMSUB", K.channel("room"))[1])

        globalLogPublisher.addObserver(when_back)
        self.addCleanup(globalLogPublisher.removeObserver, when_back)
        self.redis.call("CLIENT", "KILL", "TYPE", "pubsub")
        yield until(lambda: node.engine.state is EngineState.DOWN, "engine down")
        publish(2)  # nobody hears this one
        yield until(lambda: node.engine.up, "engine up again")
        # Up means resubscribed: Redis had confirmed the channel already, so
        # that a message published from then on is never missed.
        self.assertEqual(subscribers_when_back, [1])
        publish(3)
        yield until(lambda: node.types(client).count("message") == 2, "message 3")
        self.assertEqual([b["data"] for _, b in node.frames(client) if b["type"] == "message"], [1, 3])
        self.assertEqual(node.engine.gaps.missed, 1)

    @inlineCallbacks
    def test_lost_redis_ends_games_across_nodes(self) -> Any:
        """
        Without Redis, a game across nodes cannot go on: the game's players
        on other nodes get game_over (node_lost), the owner holds their
        seats; a publish reaches this node's subscribers and says the rest
        missed it.
        """
        one, two = self.node(hurry=0), self.node(hurry=0)
        yield until(lambda: one.engine.up and two.engine.up, "engines up")
        yield until(lambda: two.engine.node in one.engine.liveness.alive, "nodes know each other")
        first = one.connect()
        second = two.connect()
        yield until(lambda: "round" in one.types(first) and "round" in two.types(second), "a game")
        [channel] = {c for c, b in one.frames(first) if b["type"] == "round"}
        owner, other = (one, two) if channel.startswith(f"lobby:{one.engine.node}.") else (two, one)
        player = first if other is one else second
        self.redis.stop()
        yield until(lambda: "closed" in other.types(player), "the game given up")
        over = [b for _, b in other.frames(player) if b["type"] == "game_over"]
        self.assertEqual([o["reason"] for o in over], ["node_lost"])
        local = first if owner is one else second
        yield until(lambda: "away" in owner.types(local), "the seat held")
        answers = other.harness.send(player, 'room;{"type":"publish","data":1,"id":9}')
        self.assertEqual([(b["type"], b.get("code")) for _, b in answers], [("error", "engine_unavailable")])

    @inlineCallbacks
    def test_a_slow_redis_costs_bounded_memory(self) -> Any:
        """
        A Redis that stops reading (SIGSTOP) makes the node's output to it
        pile up: past the bound, what would go to other nodes is refused,
        and once Redis reads again it is accepted again.
        """
        node = self.node(auto_queue=False, max_line=1024 * 1024)
        yield until(lambda: node.engine.up, "engine up")
        publisher = node.connect()
        self.redis.process.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: self.redis.process.send_signal(signal.SIGCONT))
        big = "x" * 500_000
        sent = 0
        while not node.engine.backlogged and sent < 200:
            publisher.data_received(f'room;{{"type":"publish","data":"{big}"}}\n'.encode())
            sent += 1
            yield deferLater(reactor, 0.001, lambda: None)
        self.assertTrue(node.engine.backlogged)
        answers = node.harness.send(publisher, 'room;{"type":"publish","data":1,"id":2}')
        self.assertEqual([b.get("code") for _, b in answers], ["engine_unavailable"])
        self.redis.process.send_signal(signal.SIGCONT)
        yield until(lambda: not node.engine.backlogged, "Redis keeps up again")
        self.assertEqual(node.harness.send(publisher, 'room;{"type":"publish","data":1,"id":3}')[0][1]["type"], "published")


class _Recorded:
    """
    The engine's own boundary, recorded: what it would send to other
    nodes, and the scripts it would run (answered by the test).
    """

    def __init__(self, engine: RedisEngine) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.scripts: list[tuple[str, list[Any], Any]] = []
        engine._to_node = lambda node, route, record: self.sent.append((node, route, record))  # type: ignore[method-assign]

        def script(text: str, keys: list[str], args: list[Any]) -> Any:
            from twisted.internet.defer import Deferred

            d: Deferred[Any] = Deferred()
            self.scripts.append((text, args, d))
            return d

        engine._script = script  # type: ignore[method-assign]


class ClaimTests(SynchronousTestCase):
    """
    Lobbies formed from entries of other nodes: each node promises its
    clients to one lobby at a time.  (The engine's boundary, its messages
    to other nodes and its scripts, is recorded; no Redis.)
    """

    def setUp(self) -> None:
        from twisted.internet.task import Clock

        from soukets.engines import RedisAddress

        self.clock = Clock()
        self.server = Server(ServerSettings(auto_queue=False), self.clock, prefix="bbbb")
        self.engine = RedisEngine(RedisAddress(), "bbbb", self.clock)
        self.engine.attach(self.server)
        self.engine.state = EngineState.UP
        self.recorded = _Recorded(self.engine)
        self.harness = Harness(self.server.settings, self.clock, self.server)

    def queued(self) -> Any:
        session = self.harness.connect()
        session.data_received(b';{"type":"queue"}\n')
        self.clock.advance(0)  # (a turn's arrivals go at its end)
        text, args, d = self.recorded.scripts[-1]
        self.assertEqual(text, QUEUE_SCRIPT)
        d.callback([[1], []])
        self.assertEqual([b["type"] for _, b in self.harness.frames(session)], ["welcome", "queued"])
        return session

    def test_promised_to_one_lobby_at_a_time(self) -> None:
        session = self.queued()
        route = session.route
        self.engine._instruction("aaaa", route, {"op": "claim", "id": 7})
        self.engine._instruction("cccc", route, {"op": "claim", "id": 3})
        self.assertEqual(self.recorded.sent, [
            ("aaaa", route, {"op": "claimed", "id": 7, "ok": True}),
            ("cccc", route, {"op": "claimed", "id": 3, "ok": False}),
        ])
        self.assertTrue(self.engine.queued(session))  # (to its client, it still is)
        # aaaa's lobby did not form: it puts the entry back, and says so.
        self.engine._instruction("aaaa", route, {"op": "release", "id": 7})
        self.engine._instruction("cccc", route, {"op": "claim", "id": 4})
        self.assertEqual(self.recorded.sent[-1][2], {"op": "claimed", "id": 4, "ok": True})
        # cccc's lobby forms: the client plays there, and is out of the queue.
        self.engine._instruction("cccc", route, {"op": "seat", "channel": "lobby:cccc.x", "client": session.client_id, "name": "n"})
        self.assertFalse(self.engine.queued(session))
        self.assertTrue(self.engine.plays(session))
        self.engine._instruction("aaaa", route, {"op": "claim", "id": 8})
        self.assertEqual(self.recorded.sent[-1][2], {"op": "claimed", "id": 8, "ok": False})

    def test_a_claim_given_up_queues_again(self) -> None:
        session = self.queued()
        self.engine._instruction("aaaa", session.route, {"op": "claim", "id": 7})
        scripts = len(self.recorded.scripts)
        self.engine._instruction("aaaa", session.route, {"op": "unclaimed", "id": 7})
        self.clock.advance(0)
        self.assertEqual(self.recorded.scripts[scripts][0], QUEUE_SCRIPT)  # queued again
        self.assertEqual(self.harness.frames(session), [])  # (quietly)

    def test_a_dead_node_gives_its_promises_back(self) -> None:
        session = self.queued()
        self.engine._instruction("aaaa", session.route, {"op": "claim", "id": 7})
        scripts = len(self.recorded.scripts)
        self.engine._node_died("aaaa")
        self.clock.advance(0)
        self.assertEqual(self.recorded.scripts[scripts][0], QUEUE_SCRIPT)
        self.assertTrue(self.engine.queued(session))

    def test_lobby_waits_for_the_other_node(self) -> None:
        """
        This node takes its client and one of aaaa's off the queue: the
        lobby forms once aaaa confirms; had aaaa said no, this node's
        client would have gone back to its place.
        """
        mine = self.queued()
        self.engine._form([f"bbbb|{mine.route}", "1", json.dumps([mine.client_id, "me"]),
                           "aaaa|aaaa-3", "2", json.dumps(["aaaa-3", "them"])])
        self.assertEqual(self.recorded.sent, [("aaaa", "aaaa-3", {"op": "claim", "id": 1})])
        self.assertEqual(self.harness.frames(mine), [])
        self.engine._instruction("aaaa", "aaaa-3", {"op": "claimed", "id": 1, "ok": True})
        [(_, matched), (_, round_)] = self.harness.frames(mine)
        self.assertEqual((matched["type"], matched["players"]), ("matched", [mine.client_id, "aaaa-3"]))
        self.assertEqual(self.recorded.sent[1][2]["op"], "seat")  # then aaaa's client's matched

    def test_lobby_given_up(self) -> None:
        mine = self.queued()
        self.engine._form([f"bbbb|{mine.route}", "1", "[]", "aaaa|aaaa-3", "2", "[]"])
        self.engine._instruction("aaaa", "aaaa-3", {"op": "claimed", "id": 1, "ok": False})
        text, args, _ = self.recorded.scripts[-1]
        self.assertEqual(args, [f"bbbb|{mine.route}", "1", "[]"])  # back at its place
        self.assertTrue(self.engine.queued(mine))

    def test_silent_node(self) -> None:
        mine = self.queued()
        self.engine._form([f"bbbb|{mine.route}", "1", "[]", "aaaa|aaaa-3", "2", "[]"])
        self.clock.advance(2.0)
        self.assertEqual(self.recorded.sent[-1], ("aaaa", "aaaa-3", {"op": "unclaimed", "id": 1}))
        self.assertEqual(self.recorded.scripts[-1][1], [f"bbbb|{mine.route}", "1", "[]"])
        self.assertEqual(self.harness.frames(mine), [])

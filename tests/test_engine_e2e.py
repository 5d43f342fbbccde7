"""
Several real soukets daemons on one real Redis (each started and stopped by
its PID): one server, over real loopback sockets.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

from tests.daemon import TIMEOUT, Client, Daemon, DaemonTestCase, environment
from tests.redis import RedisServer, free_port


class ClusterTestCase(DaemonTestCase):
    """
    Starts a Redis and soukets nodes on it.
    """

    def redis(self, *args: str) -> RedisServer:
        server = RedisServer(self.mktemp(), *args)
        self.addCleanup(server.stop)
        return server

    def node(self, redis: RedisServer | str, *args: str) -> Daemon:
        url = redis if isinstance(redis, str) else redis.url
        daemon = self.start("--engine", url, *args)
        daemon.wait_for(r"engine: node \w+ of the cluster")
        return daemon

    def nodes(self, redis: RedisServer, count: int, *args: str) -> list[Daemon]:
        return [self.node(redis, *args) for _ in range(count)]

    def wait_until(self, check: Any, what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            time.sleep(0.1)

    def stats(self, client: Client) -> dict[str, Any]:
        client.send(';{"type":"stats"}')
        [(_, stats)] = client.expect("stats")
        return stats

    def matched_pair(self, a: Daemon, b: Daemon) -> tuple[Client, Client, str]:
        """
        A client on each node, matched together in one lobby.
        """
        first, _ = self.connect(a)
        second, _ = self.connect(b)
        [(_, m1)] = first.expect("matched")
        [(_, m2)] = second.expect("matched")
        self.assertEqual(m1["channel"], m2["channel"])
        self.matched = (m1, m2)
        return first, second, m1["channel"]


class StartTests(ClusterTestCase):
    def run_daemon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "soukets", "--no-web", "--listen", "tcp:0:interface=127.0.0.1",
             "--counter-file", self.mktemp() + "/c.json", *args],
            capture_output=True, text=True, timeout=TIMEOUT, env=environment(),
        )

    def test_unreachable_redis_refuses_to_start(self) -> None:
        done = self.run_daemon("--engine", f"redis://127.0.0.1:{free_port()}")
        self.assertNotEqual(done.returncode, 0)
        [line] = done.stderr.strip().splitlines()
        self.assertRegex(line, r"^soukets: --engine redis://127\.0\.0\.1:\d+/0: cannot connect")

    def test_bad_engine_url(self) -> None:
        done = self.run_daemon("--engine", "memcached://x")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("is not an engine: use local, or redis://", done.stderr)

    def test_wrong_password_refuses_to_start(self) -> None:
        redis = self.redis("--requirepass", "s3cret")
        done = self.run_daemon("--engine", f"redis://:wrong@127.0.0.1:{redis.port}")
        self.assertNotEqual(done.returncode, 0)
        [line] = done.stderr.strip().splitlines()
        self.assertIn("answered AUTH", line)

    def test_password_and_db(self) -> None:
        redis = self.redis("--requirepass", "s3cret")
        url = f"redis://:s3cret@127.0.0.1:{redis.port}/3"
        a, b = self.node(url), self.node(url)
        first, second, channel = self.matched_pair(a, b)
        self.assertEqual(redis.call("ZCARD", "soukets:nodes", db=3), 2)
        self.assertEqual(redis.call("EXISTS", "soukets:nodes"), 0)

    def test_prefixes_keep_servers_apart(self) -> None:
        redis = self.redis()
        a = self.node(redis, "--engine-prefix", "one")
        b = self.node(redis, "--engine-prefix", "two")
        first, _ = self.connect(a)
        second, _ = self.connect(b)
        self.assertEqual(self.stats(first)["nodes"], 1)
        self.assertEqual(self.stats(second)["nodes"], 1)
        first.send(';{"type":"ping"}')
        first.expect("pong")  # (no matched came before it)


class ChannelTests(ClusterTestCase):
    def test_publish_reaches_every_node_in_order(self) -> None:
        redis = self.redis()
        a, b, c = self.nodes(redis, 3, "--no-auto-queue")
        publisher, _ = self.connect(a, queued=False)
        receivers = []
        for count, node in enumerate((b, c, b), start=1):
            client, _ = self.connect(node, queued=False)
            client.send('room;{"type":"subscribe","id":1}')
            [(_, subscribed)] = client.expect("subscribed")
            self.assertEqual(subscribed["members"], count)  # every node's
            receivers.append(client)
        for i in range(500):
            publisher.send(f'room;{{"type":"publish","data":{i}}}')
        for client in receivers:
            got = [client.read()[1] for _ in range(500)]
            self.assertEqual([m["data"] for m in got], list(range(500)))
            self.assertEqual({m["type"] for m in got}, {"message"})

    def test_presence_and_who_across_nodes(self) -> None:
        redis = self.redis()
        a, b, c = self.nodes(redis, 3, "--no-auto-queue")
        watcher, _ = self.connect(b, queued=False)
        watcher.send('room;{"type":"subscribe","presence":true}')
        watcher.expect("subscribed")
        joiner, joiner_id = self.connect(a, queued=False)
        joiner.send(';{"type":"hello","name":"alice"}')
        joiner.expect("hello")
        joiner.send('room;{"type":"subscribe"}')
        joiner.expect("subscribed")
        [(_, joined)] = watcher.expect("joined")
        self.assertEqual((joined["client"], joined["name"]), (joiner_id, "alice"))
        asker, _ = self.connect(c, queued=False)
        asker.send('room;{"type":"who"}')
        [(_, members)] = asker.expect("members")
        self.assertEqual(members["count"], 2)
        self.assertIn({"client": joiner_id, "name": "alice"}, members["members"])
        joiner.close()
        [(_, parted)] = watcher.expect("parted")
        self.assertEqual(parted["client"], joiner_id)

    def test_subscriptions_come_back_after_client_kill(self) -> None:
        redis = self.redis()
        a, b = self.nodes(redis, 2, "--no-auto-queue")
        publisher, _ = self.connect(a, queued=False)
        receiver, _ = self.connect(b, queued=False)
        receiver.send('room;{"type":"subscribe"}')
        receiver.expect("subscribed")
        redis.call("CLIENT", "KILL", "TYPE", "pubsub")
        b.wait_for("Redis is back")
        a.wait_for("Redis is back")
        publisher.send('room;{"type":"publish","data":"again"}')
        [(_, message)] = receiver.expect("message")
        self.assertEqual(message["data"], "again")


class GameTests(ClusterTestCase):
    def test_a_game_across_two_nodes_and_another(self) -> None:
        redis = self.redis()
        a, b = self.nodes(redis, 2, "--move-timeout", "2", "--hurry", "0")
        first, second, channel = self.matched_pair(a, b)
        for client in (first, second):
            client.expect("round")
        first.send(f'{channel};{{"type":"move","move":"rock","id":1}}')
        second.send(f'{channel};{{"type":"move","move":"paper"}}')
        first.expect("moved", "moved", "result", "game_over", "closed")
        [_, _, (_, result), (_, over), _] = second.expect("moved", "moved", "result", "game_over", "closed")
        self.assertEqual(result["moves"], {k: v for k, v in result["moves"].items()})
        self.assertEqual(len(over["winners"]), 1)
        # A bad move from the remote player is answered by the game's node.
        for client in (first, second):
            client.send(';{"type":"queue"}')
            client.expect("queued")
        [(_, m1)] = first.expect("matched")
        [(_, m2)] = second.expect("matched")
        again = m1["channel"]
        self.assertEqual(again, m2["channel"])
        self.assertNotEqual(again, channel)
        first.expect("round")
        second.expect("round")
        second.send(f'{again};{{"type":"move","move":"lizard","id":7}}')
        [(_, error)] = second.expect("error")
        self.assertEqual((error["code"], error["id"]), ("invalid_move", 7))
        # Nobody moves: the round times out for both.
        [(_, result)] = first.expect("result")
        self.assertEqual(sorted(result["timed_out"]), sorted(m1["players"]))
        second.expect("result", "game_over", "closed")

    def test_three_players_on_three_nodes(self) -> None:
        redis = self.redis()
        nodes = self.nodes(redis, 3, "--taille-lobby", "3")
        clients = [self.connect(node)[0] for node in nodes]
        matched = [c.expect("matched")[0][1] for c in clients]
        self.assertEqual(len({m["channel"] for m in matched}), 1)
        channel = matched[0]["channel"]
        for client, move in zip(clients, ("rock", "rock", "scissors")):
            client.expect("round")
            client.send(f'{channel};{{"type":"move","move":"{move}"}}')
        results = []
        for client in clients:
            frames = [client.read()[1] for _ in range(6)]
            self.assertEqual([f["type"] for f in frames], ["moved"] * 3 + ["result", "game_over", "closed"])
            results.append(frames[3])
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[1], results[2])
        self.assertEqual(len(results[0]["winners"]), 2)

    def test_stats_count_nodes_and_cluster_clients(self) -> None:
        redis = self.redis()
        a, b, c = self.nodes(redis, 3, "--no-auto-queue")
        clients = [self.connect(node, queued=False)[0] for node in (a, b, b, c)]
        self.wait_until(
            lambda: (s := self.stats(clients[0]))["nodes"] == 3 and s["cluster_clients"] == 4,
            "stats counting 3 nodes and 4 clients",
        )
        stats = self.stats(clients[1])
        self.assertEqual(stats["clients"], 2)  # this node's

    def test_killed_owner_ends_its_games_with_node_lost(self) -> None:
        redis = self.redis()
        a, b = self.nodes(redis, 2)
        first, second, channel = self.matched_pair(a, b)
        owner, survivor = (a, second) if channel.startswith(f"lobby:{self._node_id(a)}.") else (b, first)
        survivor.expect("round")
        killed = time.monotonic()
        owner.stop(signal.SIGKILL)
        frames = []
        while not frames or frames[-1][1]["type"] != "closed":
            frames.append(survivor.read(timeout=12))
        waited = time.monotonic() - killed
        over = [body for _, body in frames if body["type"] == "game_over"]
        self.assertEqual([o["reason"] for o in over], ["node_lost"])
        self.assertLess(waited, 10.0)
        # The survivor's node goes on: it can queue, and play with bots.
        survivor.send(';{"type":"stats"}')
        [(_, stats)] = survivor.expect("stats")
        self.assertEqual(stats["nodes"], 1)

    def test_killed_player_node_lets_the_game_go_on(self) -> None:
        redis = self.redis()
        a, b = self.nodes(redis, 2, "--seat-hold", "30", "--hurry", "0")
        first, second, channel = self.matched_pair(a, b)
        owner_is_a = channel.startswith(f"lobby:{self._node_id(a)}.")
        (survivor, gone_node) = (first, b) if owner_is_a else (second, a)
        survivor.expect("round")
        gone_node.stop(signal.SIGKILL)
        [(_, away)] = survivor.expect("away")
        self.assertEqual(away["hold"], 30.0)
        survivor.send(f'{channel};{{"type":"move","move":"rock"}}')
        survivor.expect("moved")

    def test_killed_node_queued_clients_are_never_matched(self) -> None:
        redis = self.redis()
        a, b = self.nodes(redis, 2)
        self.connect(a)  # waits in the queue
        a.stop(signal.SIGKILL)
        lonely, _ = self.connect(b)
        lonely.send(';{"type":"ping"}')
        lonely.expect("pong")
        # Not now, nor once the dead node is noticed.
        time.sleep(7)
        lonely.send(';{"type":"ping"}')
        lonely.expect("pong")
        self.assertEqual(redis.call("ZCARD", "soukets:queue"), 1)
        stats = self.stats(lonely)
        self.assertEqual((stats["nodes"], stats["queued"]), (1, 1))
        # And the next player on any node is matched with it.
        c = self.node(redis)
        other, _ = self.connect(c)
        other.expect("matched")
        lonely.expect("matched")

    def test_resume_on_another_node(self) -> None:
        redis = self.redis()
        a, b, c = self.nodes(redis, 3, "--hurry", "0")
        first, second, channel = self.matched_pair(a, b)
        first_matched_token = (self.matched[0]["resume"], self.matched[0]["you"])
        second.expect("round")
        first.close()
        [(_, away)] = second.expect("away")
        again, _ = self.connect(c)
        again.send(f';{{"type":"resume","token":"{first_matched_token[0]}","id":5}}')
        [(_, resumed)] = again.expect("resumed")
        self.assertEqual((resumed["channel"], resumed["you"], resumed["id"]), (channel, first_matched_token[1], 5))
        [(_, back)] = second.expect("back")
        self.assertEqual(back["player"], first_matched_token[1])
        again.expect("round")  # the round under way, caught up
        again.send(f'{channel};{{"type":"move","move":"rock"}}')
        second.send(f'{channel};{{"type":"move","move":"rock"}}')
        [*_, (_, result)] = again.expect("moved", "moved", "result")
        self.assertEqual(result["winners"], [])
        second.expect("moved", "moved", "result")

    def test_watch_a_game_of_other_nodes(self) -> None:
        redis = self.redis()
        a, b, c = self.nodes(redis, 3, "--hurry", "0")
        first, second, channel = self.matched_pair(a, b)
        watcher, _ = self.connect(c)
        watcher.send(';{"type":"unqueue"}')
        watcher.expect("unqueued")
        games = self.wait_until(lambda: self._games(watcher), "a listed game")
        self.assertEqual(games[0]["channel"], channel)
        watcher.send(f'{channel};{{"type":"watch","id":1}}')
        watcher.expect("watching", "round")
        watcher.send(f'{channel};{{"type":"move","move":"rock"}}')
        [(_, error)] = watcher.expect("error")
        self.assertEqual(error["code"], "forbidden")  # watchers do not play
        first.expect("round")
        second.expect("round")
        first.send(f'{channel};{{"type":"move","move":"rock"}}')
        second.send(f'{channel};{{"type":"move","move":"paper"}}')
        watcher.expect("moved", "moved", "result", "game_over", "closed")

    def _games(self, client: Client) -> list[dict[str, Any]]:
        client.send(';{"type":"games"}')
        [(_, games)] = client.expect("games")
        return games["games"]

    def _node_id(self, daemon: Daemon) -> str:
        return daemon.wait_for(r"engine: node (\w+) of the cluster").group(1)

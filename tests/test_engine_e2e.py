"""
Several real soukets daemons on one real Redis (each started and stopped by
its PID): one server, over real loopback sockets.
"""

from __future__ import annotations

import json
from pathlib import Path
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


class TroubleTests(ClusterTestCase):
    def test_redis_lost_then_back(self) -> None:
        """
        Redis goes away: clients stay, local traffic goes on, what needs
        Redis answers engine_unavailable; once it is back, subscriptions and
        queue entries are restored without restarting anything.
        """
        redis = self.redis()
        a, b = self.nodes(redis, 2, "--no-auto-queue")
        publisher, _ = self.connect(a, queued=False)
        near, _ = self.connect(a, queued=False)
        far, _ = self.connect(b, queued=False)
        for client in (near, far):
            client.send('room;{"type":"subscribe"}')
            client.expect("subscribed")
        waiting, waiting_id = self.connect(a, queued=False)
        waiting.send(';{"type":"queue"}')
        waiting.expect("queued")

        redis.stop()
        a.wait_for("engine: lost Redis")
        b.wait_for("engine: lost Redis")
        publisher.send('room;{"type":"publish","data":"local","id":1}')
        [(_, error)] = publisher.expect("error")
        self.assertEqual((error["code"], error["id"]), ("engine_unavailable", 1))
        [(_, message)] = near.expect("message")
        self.assertEqual(message["data"], "local")
        for frame in (';{"type":"queue","id":2}', ';{"type":"stats","id":3}', ';{"type":"games","id":4}'):
            publisher.send(frame)
            [(_, error)] = publisher.expect("error")
            self.assertEqual(error["code"], "engine_unavailable")
        publisher.send(';{"type":"ping"}')
        publisher.expect("pong")  # the connection goes on

        redis.start()
        a.wait_for("Redis is back")
        b.wait_for("Redis is back")
        publisher.send('room;{"type":"publish","data":"everywhere"}')
        for client in (near, far):
            [(_, message)] = client.expect("message")
            self.assertEqual(message["data"], "everywhere")
        other, _ = self.connect(b, queued=False)
        other.send(';{"type":"queue"}')
        other.expect("queued")
        [(_, matched)] = other.expect("matched")
        self.assertIn(waiting_id, matched["players"])
        waiting.expect("matched")
        for daemon in (a, b):
            self.assertEqual(daemon.output.count("engine: lost Redis"), 1)  # logged once

    def test_rediss(self) -> None:
        from tests.test_tls import make_certificate

        cert, key = make_certificate(Path(self.mktemp()).resolve())
        redis = RedisServer(self.mktemp(), tls=(str(cert), str(key)))
        self.addCleanup(redis.stop)
        env = {"SSL_CERT_FILE": str(cert)}  # trust the test's own CA
        a = self.start("--engine", redis.url, env=env)
        b = self.start("--engine", redis.url, env=env)
        for daemon in (a, b):
            daemon.wait_for(r"engine: node \w+ of the cluster on rediss://")
        self.matched_pair(a, b)


class TransportTests(ClusterTestCase):
    def test_browser_on_one_node_and_telnet_on_another(self) -> None:
        from tests.test_websocket import WebSocketClient

        redis = self.redis()
        a = self.node(redis, "--web", "tcp:0:interface=127.0.0.1", "--hurry", "0")
        b = self.node(redis, "--hurry", "0")
        assert a.web_port is not None
        browser = WebSocketClient(a.web_port)
        self.addCleanup(browser.close)
        [(_, me)] = browser.expect("welcome")
        browser.expect("queued")
        telnet, them = self.connect(b)
        [(_, matched)] = browser.expect("matched")
        self.assertEqual(telnet.expect("matched")[0][1]["channel"], matched["channel"])
        lobby = matched["channel"]
        browser.expect("round")
        telnet.expect("round")
        browser.send(lobby + ';{"type":"move","move":"rock"}')
        telnet.send(lobby + ';{"type":"move","move":"scissors"}')
        for client in (browser, telnet):
            [_, _, (_, result), (_, over), _] = client.expect(
                "moved", "moved", "result", "game_over", "closed"
            )
            self.assertEqual(result["winners"], [me["client"]])
        browser.send(lobby + ';{"type":"publish","data":1}')  # the lobby is closed now
        [(_, error)] = browser.expect("error")
        self.assertEqual(error["code"], "forbidden")


class MetricsTests(ClusterTestCase):
    def test_engine_series(self) -> None:
        from urllib.request import urlopen

        from prometheus_client.parser import text_string_to_metric_families

        redis = self.redis()
        a = self.node(redis, "--web", "tcp:0:interface=127.0.0.1")
        self.node(redis)

        def series() -> dict[str, float]:
            with urlopen(f"http://127.0.0.1:{a.web_port}/metrics", timeout=TIMEOUT) as answer:
                text = answer.read().decode()
            return {
                sample.name: sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name.startswith("soukets_engine")
            }

        self.wait_until(lambda: series().get("soukets_engine_nodes") == 2, "two nodes seen")
        self.assertEqual(series()["soukets_engine_up"], 1)
        self.assertEqual(series()["soukets_engine_messages_lost_total"], 0)
        redis.stop()
        a.wait_for("engine: lost Redis")
        self.assertEqual(series()["soukets_engine_up"], 0)


class SoakTests(ClusterTestCase):
    def test_600_clients_on_3_nodes_for_30_seconds(self) -> None:
        """
        600 clients, a third on each node, play game after game for 30
        seconds, matched across nodes as they come: every result reaches
        every player of its game.
        """
        redis = self.redis()
        nodes = self.nodes(redis, 3, "--max-clients", "2000", "--hurry", "0")
        report = soak([n.port for n in nodes], clients=600, seconds=30.0)
        said = {}  # (node, what) -> the first such line: every kind of trouble, once
        for index, n in enumerate(nodes):
            for line in n.lines:
                if any(mark in line for mark in ("#warn", "#error", "#critical", "Traceback",
                                                   "Unhandled")):
                    said.setdefault((index, line.split("] ", 1)[-1][:40]), f"node {index}: {line}")
            if n.process.poll() is not None:
                said[(index, "exited")] = f"node {index} exited with {n.process.returncode}"
            elif n.lines:
                said[(index, "last")] = f"node {index}'s last line: {n.lines[-1]}"
        self.assertEqual(report["errors"], [], f"the nodes said: {list(said.values())}")
        self.assertGreater(report["games"], 600)
        # (A node sends the queue requests of one reactor turn to Redis in
        # one write, and Redis pairs arrivals in the order it reads them:
        # players of one node meet more often than chance would have it.)
        self.assertGreater(report["cross_node_games"], 200)
        self.assertEqual(report["missing"], [])


def soak(ports: list[int], clients: int, seconds: float) -> dict[str, Any]:
    """
    Drive C{clients} players (spread over C{ports}) that move at once in
    every round and queue again after every game, for C{seconds}; then let
    the games under way finish.  For each game, each of its players' view
    (results and game over) must be the same.
    """
    import random
    import selectors
    import socket

    rng = random.Random(12)
    later: list[tuple[float, Any]] = []  # (when, player) to queue again

    selector = selectors.DefaultSelector()
    players = []
    for i in range(clients):
        sock = socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=TIMEOUT)
        sock.setblocking(False)
        player = {"sock": sock, "buffer": b"", "node": i % len(ports), "games": {}, "playing": None}
        players.append(player)
        selector.register(sock, selectors.EVENT_READ, player)
    views: dict[str, dict[int, list[Any]]] = {}  # lobby -> player index -> frames
    nodes_of: dict[str, set[int]] = {}
    errors: list[Any] = []
    games = 0
    stop_queueing = time.monotonic() + seconds
    deadline = stop_queueing + 20.0
    while time.monotonic() < deadline:
        if time.monotonic() > stop_queueing and not later and not any(p["playing"] for p in players):
            break
        now = time.monotonic()
        due = [item for item in later if item[0] <= now]
        rng.shuffle(due)  # (a slow loop must not queue a game's players in a row)
        for when, player in due:
            later.remove((when, player))
            player["sock"].sendall(b';{"type":"queue"}\n')
        for key, _ in selector.select(timeout=0.01):
            player = key.data
            index = id(player)
            try:
                data = player["sock"].recv(65536)
            except BlockingIOError:
                continue
            if not data:
                errors.append("a connection was closed")
                selector.unregister(player["sock"])
                continue
            player["buffer"] += data
            *lines, player["buffer"] = player["buffer"].split(b"\n")
            out = []
            for line in lines:
                channel, _, document = line.decode().partition(";")
                body = json.loads(document)
                kind = body["type"]
                if kind == "error":
                    errors.append(body)
                elif kind == "matched":
                    if player["playing"] is not None:
                        errors.append(f"matched into {body['channel']} while in {player['playing']}")
                    player["playing"] = body["channel"]
                    views.setdefault(body["channel"], {})[index] = []
                    nodes_of.setdefault(body["channel"], set()).add(player["node"])
                elif kind == "round":
                    out.append(f'{channel};{{"type":"move","move":"rock"}}\n')
                elif kind in ("result", "game_over"):
                    views[channel][index].append(body)
                    if kind == "game_over":
                        player["playing"] = None
                        if time.monotonic() < stop_queueing:
                            # A moment apart, so that players of one game
                            # meet players of other nodes' games next.
                            later.append((time.monotonic() + rng.uniform(0, 0.3), player))
            if out:
                player["sock"].sendall("".join(out).encode())
    for player in players:
        player["sock"].close()
    missing = []
    for lobby, seen in views.items():
        finished = [frames for frames in seen.values() if frames and frames[-1]["type"] == "game_over"]
        if len(finished) != len(seen) or any(f != finished[0] for f in finished):
            missing.append((lobby, seen))
        else:
            games += 1
    return {
        "errors": errors[:10],
        "games": games,
        "cross_node_games": sum(1 for n in nodes_of.values() if len(n) > 1),
        "missing": missing[:3],
    }

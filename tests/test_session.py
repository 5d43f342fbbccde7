"""
Tests for L{soukets.session.Session} and L{soukets.server.Server}: the
protocol as a client sees it, with no sockets and a L{task.Clock}.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from soukets.server import ServerSettings
from soukets.session import Session

from tests.support import Harness, parse


class ControlChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(ServerSettings(auto_queue=False))
        self.alice = self.h.connect()

    def test_welcome(self) -> None:
        self.assertEqual(
            self.h.frames(self.alice),
            [
                (
                    "",
                    {
                        "type": "welcome",
                        "protocol": 1,
                        "client": self.alice.client_id,
                        "lobby_size": 2,
                        "move_timeout": 10.0,
                        "game": "rps",
                    },
                )
            ],
        )

    def test_auto_queue(self) -> None:
        """
        By default a new connection is queued at once, as if it sent queue.
        """
        h = Harness()
        session = h.connect()
        self.assertEqual(
            [body["type"] for _, body in h.frames(session)], ["welcome", "queued"]
        )
        self.assertEqual(h.server.lobbies.waiting, 1)

    def test_ping(self) -> None:
        self.assertEqual(self.h.send(self.alice, ';{"type":"ping"}'), [("", {"type": "pong"})])
        self.assertEqual(
            self.h.send(self.alice, ';{"type":"ping","id":"x1"}'),
            [("", {"type": "pong", "id": "x1"})],
        )

    def test_pong_is_silent(self) -> None:
        self.assertEqual(self.h.send(self.alice, ';{"type":"pong"}'), [])

    def test_hello(self) -> None:
        self.assertEqual(
            self.h.send(self.alice, ';{"type":"hello","name":"alice","id":2}'),
            [("", {"type": "hello", "name": "alice", "id": 2})],
        )
        self.assertEqual(self.alice.name, "alice")

    def test_hello_bad_name(self) -> None:
        for name in ('""', '"' + "x" * 33 + '"', '"a\\nb"', "3"):
            [(channel, error)] = self.h.send(self.alice, ';{"type":"hello","name":%s}' % name)
            self.assertEqual(error["code"], "bad_json")
        self.assertEqual(self.alice.name, self.alice.client_id)

    def test_matched_names_exactly(self) -> None:
        """
        Names with quotes, backslashes, non-ASCII letters or the text of a
        JSON key in them reach every player as the compact JSON of
        C{matched} says, each player with its own C{you} and token.
        """
        bob = self.h.connect()
        names = {self.alice: 'al "the" \\ é,"names":{', bob: "b\u00f6b"}
        for session, name in names.items():
            [(_, hello)] = self.h.send(session, ';{"type":"hello","name":%s}' % json.dumps(name))
            self.assertEqual(hello["type"], "hello", hello)
        for session in names:
            session.data_received(b';{"type":"queue"}\n')
        tokens = set()
        for session in names:
            [matched] = [body for _, body in self.h.frames(session) if body["type"] == "matched"]
            self.assertEqual(matched["players"], [self.alice.client_id, bob.client_id])
            self.assertEqual(matched["names"], {s.client_id: s.name for s in names})
            self.assertEqual(matched["you"], session.client_id)
            tokens.add(matched["resume"])
        self.assertEqual(self.alice.name, 'al "the" \\ é,"names":{')
        self.assertEqual(len(tokens), 2)

    def test_queue_unqueue(self) -> None:
        self.assertEqual(
            self.h.send(self.alice, ';{"type":"queue","id":1}'),
            [("", {"type": "queued", "waiting": 1, "lobby_size": 2, "id": 1})],
        )
        [(_, error)] = self.h.send(self.alice, ';{"type":"queue","id":2}')
        self.assertEqual((error["code"], error["id"]), ("already_queued", 2))
        self.assertEqual(self.h.send(self.alice, ';{"type":"unqueue"}'), [("", {"type": "unqueued"})])
        self.assertEqual(self.h.server.lobbies.waiting, 0)
        self.assertEqual(self.h.send(self.alice, ';{"type":"unqueue"}'), [("", {"type": "unqueued"})])

    def test_stats(self) -> None:
        bob = self.h.connect()
        self.h.send(bob, 'room;{"type":"subscribe"}')
        self.h.send(self.alice, ';{"type":"queue"}')
        self.assertEqual(
            self.h.send(self.alice, ';{"type":"stats","id":5}'),
            [
                (
                    "",
                    {
                        "type": "stats",
                        "clients": 2,
                        "host_clients": 2,
                        "max_clients": 1000,
                        "queued": 1,
                        "lobbies": 0,
                        "channels": 1,
                        "id": 5,
                    },
                )
            ],
        )

    def test_stats_answered_in_order(self) -> None:
        """
        While the host's count is read, later frames wait (and the
        connection reads nothing more), so that answers keep the frames'
        order.
        """
        reading: list[Deferred[int]] = []

        def host_clients(server: object) -> Deferred[int]:
            reading.append(Deferred())
            return reading[-1]

        flow = []
        h = Harness(ServerSettings(auto_queue=False))
        h.server.host_clients = host_clients
        session = h.server.connect(
            bytearray().extend, lambda: None,
            lambda: flow.append("pause"), lambda: flow.append("resume"),
        )
        output = bytearray()
        session.output = output.extend
        session.data_received(b';{"type":"stats"}\n;{"type":"ping"}\n')
        self.assertEqual((output, flow), (bytearray(), ["pause"]))
        reading[0].callback(7)
        frames = parse(bytes(output))
        self.assertEqual([body["type"] for _, body in frames], ["stats", "pong"])
        self.assertEqual(frames[0][1]["host_clients"], 7)
        self.assertEqual(flow, ["pause", "resume"])

    def test_unknown_type(self) -> None:
        [(channel, error)] = self.h.send(self.alice, ';{"type":"dance","id":9}')
        self.assertEqual((channel, error["code"], error["id"]), ("", "unknown_type", 9))
        [(channel, error)] = self.h.send(self.alice, 'room;{"type":"dance"}')
        self.assertEqual((channel, error["code"]), ("room", "unknown_type"))

    def test_bad_line_then_ping(self) -> None:
        """
        Every kind of bad line gets one error frame, with the right code,
        and the connection keeps working.
        """
        cases = [
            ("hello there", "bad_frame", ""),
            ("room;{nope", "bad_json", "room"),
            ("bad channel;{}", "bad_channel", ""),
            (';{"type":"move","move":"rock"}', "unknown_type", ""),
            ('room;{"type":"move","move":"rock"}', "not_in_game", "room"),
            ('room;{"type":"unsubscribe"}', "not_subscribed", "room"),
        ]
        for line, code, channel in cases:
            frames = self.h.send(self.alice, line)
            self.assertEqual(len(frames), 1, line)
            self.assertEqual((frames[0][0], frames[0][1]["code"]), (channel, code), line)
            self.assertEqual(self.h.send(self.alice, ';{"type":"ping"}'), [("", {"type": "pong"})])

    def test_not_utf8(self) -> None:
        self.h.frames(self.alice)
        self.alice.data_received(b"\xff\xfd\x18\xff\xfa;x\r\n")
        [(_, error)] = self.h.frames(self.alice)
        self.assertEqual(error["code"], "bad_frame")

    def test_line_too_long(self) -> None:
        h = Harness(ServerSettings(auto_queue=False, max_line=100))
        session = h.connect()
        h.frames(session)
        session.data_received(b';{"type":"ping","pad":"' + b"x" * 200)
        session.data_received(b'"}\r\n;{"type":"ping"}\n')
        [(_, error), (_, pong)] = h.frames(session)
        self.assertEqual(error["code"], "line_too_long")
        self.assertIn("100", error["message"])
        self.assertEqual(pong, {"type": "pong"})

    def test_empty_lines_ignored(self) -> None:
        self.h.frames(self.alice)
        self.alice.data_received(b"\r\n\n  \r\n\r")
        self.assertEqual(self.h.frames(self.alice), [])


class ChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(ServerSettings(auto_queue=False, max_subscriptions=3))
        self.a, self.b, self.c = self.h.connect(), self.h.connect(), self.h.connect()

    def test_pubsub_three_clients(self) -> None:
        self.assertEqual(
            self.h.send(self.a, 'room;{"type":"subscribe","id":1}'),
            [("room", {"type": "subscribed", "members": 1, "id": 1})],
        )
        self.h.send(self.b, 'room;{"type":"subscribe"}')
        self.assertEqual(self.h.send(self.c, 'room;{"type":"publish","data":{"x":[1]}}'), [])
        message = {"type": "message", "from": self.c.client_id, "data": {"x": [1]}}
        self.assertEqual(self.h.frames(self.a), [("room", message)])
        self.assertEqual(self.h.frames(self.b), [("room", message)])
        self.assertEqual(
            self.h.send(self.a, 'room;{"type":"publish","data":"hi","id":"p"}'),
            [("room", {"type": "published", "receivers": 1, "id": "p"})],
        )
        self.assertEqual(
            self.h.send(self.a, 'room;{"type":"unsubscribe"}'),
            [("room", {"type": "unsubscribed"})],
        )
        self.h.send(self.c, 'room;{"type":"publish","data":2}')
        self.assertEqual(self.h.frames(self.a), [])

    def test_data_relayed_as_written(self) -> None:
        """
        Compact data is relayed as the publisher wrote it, byte for byte
        (not encoded again); loosely written data is relayed compact.
        """
        self.h.send(self.b, 'room;{"type":"subscribe"}')
        for data, relayed in (('1E5', '1E5'), ('"\\u00e9"', '"\\u00e9"'),
                              ('{"a":[1.50]}', '{"a":[1.50]}'),
                              ('{"a": [1.50]}', '{"a":[1.5]}')):
            self.h.take(self.b)
            self.h.send(self.a, 'room;{"type":"publish","data":%s}' % data)
            self.assertEqual(
                self.h.take(self.b),
                ('room;{"type":"message","from":"%s","data":%s}\n'
                 % (self.a.client_id, relayed)).encode(),
            )

    def test_number_out_of_range(self) -> None:
        """
        A publish with a number no double holds is refused with
        C{bad_json}; nothing is relayed and the connection goes on.
        """
        self.h.send(self.b, 'room;{"type":"subscribe"}')
        [(channel, error)] = self.h.send(self.a, 'room;{"type":"publish","data":1e400}')
        self.assertEqual((channel, error["code"]), ("room", "bad_json"))
        self.assertEqual(self.h.frames(self.b), [])
        self.assertEqual(self.h.send(self.a, ';{"type":"ping"}'), [("", {"type": "pong"})])

    def test_publish_needs_data(self) -> None:
        [(channel, error)] = self.h.send(self.a, 'room;{"type":"publish"}')
        self.assertEqual((channel, error["code"]), ("room", "bad_json"))

    def test_subscription_limit(self) -> None:
        for name in ("r1", "r2", "r3"):
            self.h.send(self.a, name + ';{"type":"subscribe"}')
        [(_, error)] = self.h.send(self.a, 'r4;{"type":"subscribe"}')
        self.assertEqual(error["code"], "forbidden")
        [(_, ok)] = self.h.send(self.a, 'r3;{"type":"subscribe"}')
        self.assertEqual(ok["type"], "subscribed")

    def test_disconnect_leaves_channels(self) -> None:
        self.h.send(self.a, 'room;{"type":"subscribe"}')
        self.a.connection_lost()
        self.assertIsNone(self.h.server.hub.get("room"))
        self.assertNotIn(self.a.client_id, self.h.server.sessions)
        self.a.send(b"late")  # nothing is written after the connection is gone
        self.assertEqual(self.h.take(self.a), b"")


class LobbyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(ServerSettings(move_timeout=5, seat_hold=0, hurry=0))
        self.a, self.b = self.h.connect(), self.h.connect()
        self.matched = self.h.frames(self.a)[2][1]
        self.channel = self.matched["channel"]
        self.h.frames(self.b)

    def test_matched(self) -> None:
        ids = [self.a.client_id, self.b.client_id]
        self.assertEqual(self.matched["players"], ids)
        self.assertEqual(self.matched["you"], self.a.client_id)
        self.assertGreaterEqual(len(self.channel), 22)  # 128 bits, base64
        self.assertEqual(self.h.server.hub.subscriptions(self.a), {self.channel})

    def test_game(self) -> None:
        """
        A whole game: moves, result, game over, channel closed; the players
        may queue again.
        """
        self.h.send(self.a, self.channel + ';{"type":"move","move":"rock"}')
        self.h.send(self.b, self.channel + ';{"type":"move","move":"paper","id":4}')
        frames = self.h.frames(self.a)
        self.assertEqual(
            [body["type"] for _, body in frames],
            ["moved", "result", "game_over", "closed"],
        )
        self.assertTrue(all(channel == self.channel for channel, _ in frames))
        self.assertEqual(frames[2][1]["winners"], [self.b.client_id])
        self.assertIsNone(self.h.server.hub.get(self.channel))
        self.assertEqual(self.h.send(self.a, ';{"type":"queue"}')[0][1]["type"], "queued")

    def test_game_errors(self) -> None:
        move = self.channel + ';{"type":"move","move":"%s","id":1}'
        self.assertEqual(self.h.send(self.a, move % "lizard")[0][1]["code"], "invalid_move")
        self.h.send(self.a, move % "rock")
        [(channel, error)] = self.h.send(self.a, move % "rock")
        self.assertEqual((channel, error["code"], error["id"]), (self.channel, "already_moved", 1))
        [(_, error)] = self.h.send(self.a, ';{"type":"queue"}')
        self.assertEqual(error["code"], "in_game")

    def test_outsider(self) -> None:
        """
        A client who is not a player cannot subscribe, publish or move on a
        lobby channel, and is told nothing about it.
        """
        eve = self.h.connect()
        self.h.frames(eve)
        for line, code in [
            ('{"type":"subscribe"}', "forbidden"),
            ('{"type":"publish","data":"x"}', "forbidden"),
            ('{"type":"move","move":"rock"}', "not_in_game"),
        ]:
            [(_, error)] = self.h.send(eve, self.channel + ";" + line)
            self.assertEqual(error["code"], code)
        self.assertEqual(self.h.frames(self.a), [])

    def test_chat_between_players(self) -> None:
        self.h.send(self.a, self.channel + ';{"type":"publish","data":"gl"}')
        self.assertEqual(
            self.h.frames(self.b),
            [(self.channel, {"type": "message", "from": self.a.client_id, "data": "gl"})],
        )

    def test_disconnect_mid_game(self) -> None:
        self.a.connection_lost()
        self.assertEqual(
            self.h.frames(self.b),
            [
                (self.channel, {"type": "left", "player": self.a.client_id}),
                (
                    self.channel,
                    {
                        "type": "game_over",
                        "reason": "player_left",
                        "scores": {self.a.client_id: 0, self.b.client_id: 0},
                        "winners": [self.b.client_id],
                    },
                ),
                (self.channel, {"type": "closed"}),
            ],
        )
        self.assertEqual(self.h.server.lobbies.lobbies, {})
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_unsubscribe_leaves_game(self) -> None:
        self.assertEqual(
            self.h.send(self.a, self.channel + ';{"type":"unsubscribe"}'),
            [(self.channel, {"type": "unsubscribed"})],
        )
        self.assertEqual(self.h.frames(self.b)[-1], (self.channel, {"type": "closed"}))

    def test_timeout(self) -> None:
        self.h.send(self.a, self.channel + ';{"type":"move","move":"rock"}')
        self.h.frames(self.b)
        self.h.clock.advance(5)
        result = self.h.frames(self.b)[0][1]
        self.assertEqual(result["timed_out"], [self.b.client_id])
        self.assertEqual(result["winners"], [self.a.client_id])

    def test_shutdown(self) -> None:
        """
        Stopping the lobbies ends every game with game_over (shutdown, no
        winners); then every client is told bye and dropped.
        """
        waiting = self.h.connect()
        self.h.server.lobbies.startService()
        self.h.server.lobbies.stopService()
        self.h.server.say_goodbye("shutdown")
        self.assertEqual(
            [body for _, body in self.h.frames(self.a)],
            [
                {
                    "type": "game_over",
                    "reason": "shutdown",
                    "scores": {self.a.client_id: 0, self.b.client_id: 0},
                    "winners": [],
                },
                {"type": "closed"},
                {"type": "bye", "reason": "shutdown"},
            ],
        )
        self.assertEqual(self.h.frames(waiting)[-1][1], {"type": "bye", "reason": "shutdown"})
        self.assertEqual(sorted(self.h.disconnected), sorted(self.h.server.sessions))
        self.assertEqual(self.h.clock.getDelayedCalls(), [])


class LargerLobbyTests(SynchronousTestCase):
    def test_three_players_in_arrival_order(self) -> None:
        h = Harness(ServerSettings(lobby_size=3, seat_hold=0))
        players: list[Session] = [h.connect() for _ in range(4)]
        queued = [h.frames(p)[1][1]["waiting"] for p in players]
        self.assertEqual(queued, [1, 2, 3, 1])
        self.assertEqual(len(h.server.lobbies.lobbies), 1)
        lobby = next(iter(h.server.lobbies.lobbies.values()))
        self.assertEqual(lobby.players, tuple(p.client_id for p in players[:3]))
        self.assertEqual(h.server.lobbies.waiting, 1)

    def test_leaving_queue_before_match(self) -> None:
        """
        A queued client whose connection is gone is never matched.
        """
        h = Harness()
        first = h.connect()
        first.connection_lost()
        second, third = h.connect(), h.connect()
        lobby = next(iter(h.server.lobbies.lobbies.values()))
        self.assertEqual(lobby.players, (second.client_id, third.client_id))

    def test_three_players_one_leaves(self) -> None:
        h = Harness(ServerSettings(lobby_size=3, seat_hold=0))
        a, b, c = h.connect(), h.connect(), h.connect()
        channel = h.frames(a)[2][1]["channel"]
        h.frames(b)
        c.connection_lost()
        self.assertEqual(h.frames(b), [(channel, {"type": "left", "player": c.client_id})])
        h.send(a, channel + ';{"type":"move","move":"rock"}')
        h.send(b, channel + ';{"type":"move","move":"rock"}')
        result = [body for _, body in h.frames(a) if body["type"] == "result"][0]
        self.assertEqual(result["timed_out"], [c.client_id])
        self.assertEqual(result["winners"], [a.client_id, b.client_id])


class ChatGameTests(SynchronousTestCase):
    def test_chat_lobby(self) -> None:
        h = Harness(ServerSettings(game="chat", lobby_size=3, seat_hold=0))
        a, b, c = h.connect(), h.connect(), h.connect()
        channel = h.frames(a)[2][1]["channel"]
        self.assertEqual(h.frames(a), [])  # no round: chat runs no game
        h.frames(b), h.frames(c)
        h.send(a, channel + ';{"type":"publish","data":"hi"}')
        self.assertEqual(h.frames(b)[0][1]["data"], "hi")
        [(_, error)] = h.send(a, channel + ';{"type":"move","move":"rock"}')
        self.assertEqual(error["code"], "unknown_type")
        c.connection_lost()
        self.assertEqual(h.frames(a), [(channel, {"type": "left", "player": c.client_id})])
        b.connection_lost()
        self.assertEqual(
            h.frames(a),
            [(channel, {"type": "left", "player": b.client_id}), (channel, {"type": "closed"})],
        )
        self.assertEqual(h.server.lobbies.lobbies, {})

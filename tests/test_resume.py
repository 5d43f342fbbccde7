"""
Seat hold and resume, hurry, presence, spectators and bots, driven on a
L{task.Clock} through in-process sessions (L{tests.support.Harness}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from soukets.server import ServerSettings

from tests.support import Harness
from tests.test_ids import UnguessableMixin


def kinds(frames: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [body["type"] for _, body in frames]


class Game:
    """
    Two players matched in a game of rock-paper-scissors, on a clock.
    """

    def __init__(self, rounds: int = 1, hold: float = 30.0, game: str = "rps") -> None:
        self.h = Harness(ServerSettings(rounds=rounds, seat_hold=hold, hurry=0, game=game))
        self.a, self.b = self.h.connect(), self.h.connect()
        matched = [body for _, body in self.h.frames(self.a) if body["type"] == "matched"][0]
        self.channel = matched["channel"]
        self.token = matched["resume"]
        self.a_id, self.b_id = matched["players"]
        self.h.frames(self.b)

    def move(self, session: Any, shape: str) -> None:
        self.h.send(session, self.channel + ';{"type":"move","move":"%s"}' % shape)

    def resume(self, token: str | None = None) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
        c = self.h.connect(start=False)
        frames = self.h.send(c, ';{"type":"resume","token":"%s"}' % (token or self.token))
        return c, frames


class ResumeTests(SynchronousTestCase):
    def test_before_moving(self) -> None:
        """
        A dropped player's seat is held; the others get away; a resume from
        a new connection takes the seat (the original id), with the round
        and the seconds left; the others get back; the game goes on.
        """
        g = Game()
        g.h.clock.advance(4)
        g.a.connection_lost()
        self.assertEqual(g.h.frames(g.b), [(g.channel, {"type": "away", "player": g.a_id, "hold": 30.0})])
        g.h.clock.advance(1.5)
        c, frames = g.resume()
        [(_, resumed), (channel, round_)] = frames
        self.assertEqual(resumed["type"], "resumed")
        self.assertEqual((resumed["channel"], resumed["you"], resumed["players"]), (g.channel, g.a_id, [g.a_id, g.b_id]))
        self.assertNotEqual(resumed["resume"], g.token)
        self.assertEqual((channel, round_), (g.channel, {"type": "round", "round": 1, "timeout": 4.5}))
        self.assertEqual(c.client_id, g.a_id)
        self.assertEqual(g.h.frames(g.b), [(g.channel, {"type": "back", "player": g.a_id})])
        g.move(c, "rock")
        g.move(g.b, "scissors")
        result = [body for _, body in g.h.frames(c) if body["type"] == "result"][0]
        self.assertEqual(result["winners"], [g.a_id])

    def test_after_moving(self) -> None:
        g = Game()
        g.move(g.a, "paper")
        g.a.connection_lost()
        c, frames = g.resume()
        self.assertEqual(kinds(frames), ["resumed", "round", "moved"])
        self.assertEqual(frames[2][1]["player"], g.a_id)
        g.move(g.b, "rock")
        self.assertIn("result", kinds(g.h.frames(c)))

    def test_missed_results_replayed(self) -> None:
        """
        A result (and the next round) sent while away come on resume, the
        held player having timed out as usual.
        """
        g = Game(rounds=2)
        g.a.connection_lost()
        g.move(g.b, "rock")
        g.h.clock.advance(10)  # round 1 times out for the held player
        g.h.clock.advance(2)
        c, frames = g.resume()
        self.assertEqual(kinds(frames), ["resumed", "result", "round"])
        self.assertEqual(frames[1][1]["timed_out"], [g.a_id])
        self.assertEqual(frames[2][1], {"type": "round", "round": 2, "timeout": 8.0})

    def test_game_over_while_away(self) -> None:
        g = Game(rounds=1)
        g.a.connection_lost()
        g.move(g.b, "rock")
        g.h.clock.advance(10)
        self.assertIn("game_over", kinds(g.h.frames(g.b)))
        c, frames = g.resume()
        self.assertEqual(frames[0][1]["code"], "bad_token")  # void after game_over

    def test_hold_runs_out(self) -> None:
        g = Game(rounds=3)
        g.a.connection_lost()
        g.h.frames(g.b)
        g.h.clock.advance(29.9)
        self.assertNotIn("left", kinds(g.h.frames(g.b)))
        g.h.clock.advance(0.1)
        self.assertEqual(kinds(g.h.frames(g.b))[:3], ["left", "game_over", "closed"])
        c, frames = g.resume()
        self.assertEqual((kinds(frames), frames[0][1]["code"]), (["error"], "bad_token"))

    def test_token_used_once_and_twice_at_once(self) -> None:
        g = Game()
        g.a.connection_lost()
        c = g.h.connect(start=False)
        d = g.h.connect(start=False)
        line = (';{"type":"resume","token":"%s"}\n' % g.token).encode()
        c.data_received(line)
        d.data_received(line)
        answers = [kinds(g.h.frames(s))[0] for s in (c, d)]
        self.assertEqual(answers, ["resumed", "error"])
        e, frames = g.resume()
        self.assertEqual(frames[0][1]["code"], "bad_token")
        for bad in ('""', "12", "null", '"' + "x" * 40 + '"'):
            frames = g.h.send(e, ';{"type":"resume","token":%s}' % bad)
            self.assertEqual(frames[0][1]["code"], "bad_token", bad)

    def test_rotated_token_works_next_time(self) -> None:
        g = Game()
        g.a.connection_lost()
        c, frames = g.resume()
        token = frames[0][1]["resume"]
        c.connection_lost()
        d, frames = g.resume(token)
        self.assertEqual(frames[0][1]["you"], g.a_id)

    def test_half_open_taken_over(self) -> None:
        """
        A resume while the old connection is still open takes the seat; the
        old connection gets bye resumed_elsewhere and is closed.
        """
        g = Game()
        g.h.frames(g.a)
        c, frames = g.resume()
        self.assertEqual(kinds(frames)[:2], ["resumed", "round"])
        self.assertEqual(g.h.frames(g.a), [("", {"type": "bye", "reason": "resumed_elsewhere"})])
        self.assertIn(g.a_id, g.h.disconnected)
        g.a.connection_lost()  # the transport reports it
        self.assertIs(g.h.server.sessions[g.a_id], c)
        g.move(c, "rock")
        g.move(g.b, "paper")
        self.assertIn("result", kinds(g.h.frames(c)))
        self.assertNotIn("left", kinds(g.h.frames(g.b)))

    def test_resume_leaves_queue(self) -> None:
        g = Game()
        g.a.connection_lost()
        c = g.h.connect()  # auto-queued
        self.assertEqual(g.h.server.lobbies.waiting, 1)
        frames = g.h.send(c, ';{"type":"resume","token":"%s"}' % g.token)
        self.assertEqual(kinds(frames)[0], "resumed")
        self.assertEqual(g.h.server.lobbies.waiting, 0)

    def test_no_hold(self) -> None:
        g = Game(hold=0)
        g.a.connection_lost()
        self.assertEqual(kinds(g.h.frames(g.b)), ["left", "game_over", "closed"])

    def test_third_party_game(self) -> None:
        """
        The seat hold and resume work for any game, without a line of it:
        here the example buzzer.
        """
        from tests.test_games import installed_buzzer
        import sys

        sys.path.insert(0, installed_buzzer())
        self.addCleanup(sys.path.remove, installed_buzzer())
        g = Game(game="buzzer")
        g.a.connection_lost()
        self.assertEqual(kinds(g.h.frames(g.b)), ["away"])
        c, frames = g.resume()
        self.assertEqual(kinds(frames), ["resumed"])  # nothing missed
        g.h.send(c, g.channel + ';{"type":"buzz"}')
        over = [body for _, body in g.h.frames(g.b) if body["type"] == "game_over"][0]
        self.assertEqual(over["winners"], [g.a_id])


class TokenTests(UnguessableMixin, SynchronousTestCase):
    def test_tokens_unguessable(self) -> None:

        h = Harness()
        tokens = []
        for _ in range(128):
            a, b = h.connect(), h.connect()
            for session in (a, b):
                tokens += [body["resume"] for _, body in h.frames(session) if body["type"] == "matched"]
        self.assertUnguessable(tokens, "", 18)


class HurryTests(SynchronousTestCase):
    def test_once_to_who_has_not_moved(self) -> None:
        h = Harness(ServerSettings(hurry=3))
        a, b = h.connect(), h.connect()
        channel = [body for _, body in h.frames(a) if body["type"] == "matched"][0]["channel"]
        h.frames(b)
        h.send(a, channel + ';{"type":"move","move":"rock"}')
        h.frames(b)
        h.clock.advance(7)
        self.assertEqual(h.frames(a), [])
        self.assertEqual(h.frames(b), [(channel, {"type": "hurry", "round": 1, "remaining": 3.0})])


class PresenceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(ServerSettings(auto_queue=False))
        self.alice, self.bob, self.carol = (self.h.connect() for _ in range(3))
        self.h.send(self.alice, ';{"type":"hello","name":"alice"}')

    def test_joined_and_parted(self) -> None:
        self.h.send(self.alice, 'room;{"type":"subscribe","presence":true}')
        self.h.send(self.carol, 'room;{"type":"subscribe"}')  # does not ask
        self.h.frames(self.alice)
        self.h.send(self.bob, 'room;{"type":"subscribe"}')
        self.assertEqual(self.h.frames(self.alice), [("room", {"type": "joined", "client": self.bob.client_id, "name": self.bob.client_id})])
        self.assertEqual(self.h.frames(self.carol), [])
        self.h.send(self.bob, 'room;{"type":"unsubscribe"}')
        self.assertEqual(self.h.frames(self.alice), [("room", {"type": "parted", "client": self.bob.client_id})])
        self.h.send(self.bob, 'room;{"type":"subscribe"}')
        self.h.frames(self.alice)
        self.bob.connection_lost()  # a dropped connection parts at once
        self.assertEqual(self.h.frames(self.alice), [("room", {"type": "parted", "client": self.bob.client_id})])

    def test_who(self) -> None:
        self.h.send(self.alice, 'room;{"type":"subscribe"}')
        self.h.send(self.bob, 'room;{"type":"subscribe"}')
        [(channel, members)] = self.h.send(self.carol, 'room;{"type":"who","id":1}')
        self.assertEqual(members, {
            "type": "members", "count": 2, "id": 1,
            "members": [{"client": self.alice.client_id, "name": "alice"},
                        {"client": self.bob.client_id, "name": self.bob.client_id}],
        })
        [(_, empty)] = self.h.send(self.carol, 'nobody;{"type":"who"}')
        self.assertEqual((empty["count"], empty["members"]), (0, []))

    def test_who_in_a_lobby(self) -> None:
        for session in (self.alice, self.bob):
            self.h.send(session, ';{"type":"queue"}')
        channel = [body for _, body in self.h.frames(self.alice) if body["type"] == "matched"][0]["channel"]
        [(_, members)] = self.h.send(self.alice, channel + ';{"type":"who"}')
        self.assertEqual(members["count"], 2)
        [(_, error)] = self.h.send(self.carol, channel + ';{"type":"who"}')
        self.assertEqual(error["code"], "forbidden")
        self.h.send(self.carol, channel + ';{"type":"watch"}')
        [(_, members)] = self.h.send(self.carol, channel + ';{"type":"who"}')
        self.assertEqual(members["count"], 3)


class SpectatorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(ServerSettings(hurry=3, rounds=2))
        self.a, self.b = self.h.connect(), self.h.connect()
        matched = [body for _, body in self.h.frames(self.a) if body["type"] == "matched"][0]
        self.channel = matched["channel"]
        self.h.frames(self.b)
        self.eve = self.h.connect(start=False)

    def test_games_listed(self) -> None:
        [(_, games)] = self.h.send(self.eve, ';{"type":"games"}')
        self.assertEqual(games["games"], [{
            "channel": self.channel, "players": [self.a.client_id, self.b.client_id],
            "names": {self.a.client_id: self.a.client_id, self.b.client_id: self.b.client_id},
            "round": 1, "watchers": 0,
        }])

    def test_watcher_sees_everything_public_and_no_move_early(self) -> None:
        self.h.clock.advance(2)
        self.h.send(self.a, self.channel + ';{"type":"move","move":"rock"}')
        frames = self.h.send(self.eve, self.channel + ';{"type":"watch"}')
        self.assertEqual(kinds(frames), ["watching", "round", "moved"])
        self.assertEqual(frames[1][1], {"type": "round", "round": 1, "timeout": 8.0})
        self.h.send(self.b, self.channel + ';{"type":"publish","data":"gl"}')
        self.h.clock.advance(5)  # hurry for b: not for the watcher
        seen = self.h.frames(self.eve)
        self.assertEqual(kinds(seen), ["message"])
        self.h.send(self.b, self.channel + ';{"type":"move","move":"paper"}')
        seen = self.h.frames(self.eve)
        self.assertEqual(kinds(seen), ["moved", "result", "round"])
        for frame in self.h.frames(self.eve):
            self.assertNotIn("rock", str(frame))
        # A watcher can neither move nor publish.
        for line in ('{"type":"move","move":"rock"}', '{"type":"publish","data":1}'):
            [(_, error)] = self.h.send(self.eve, self.channel + ";" + line)
            self.assertEqual(error["code"], "forbidden")
        [(_, games)] = self.h.send(self.eve, ';{"type":"games"}')
        self.assertEqual(games["games"][0]["watchers"], 1)
        self.assertEqual(kinds(self.h.send(self.eve, self.channel + ';{"type":"unwatch"}')), ["unwatched"])
        self.h.send(self.a, self.channel + ';{"type":"move","move":"rock"}')
        self.assertEqual(self.h.frames(self.eve), [])

    def test_watcher_never_learns_a_move_before_the_result(self) -> None:
        self.h.send(self.eve, self.channel + ';{"type":"watch"}')
        self.h.send(self.a, self.channel + ';{"type":"move","move":"scissors"}')
        before = self.h.take(self.eve)
        self.assertNotIn(b"scissors", before)
        self.h.send(self.b, self.channel + ';{"type":"move","move":"paper"}')
        self.assertIn(b"scissors", self.h.take(self.eve))  # in the result

    def test_off(self) -> None:
        h = Harness(ServerSettings(spectators=False))
        a, _ = h.connect(), h.connect()
        channel = [body for _, body in h.frames(a) if body["type"] == "matched"][0]["channel"]
        eve = h.connect(start=False)
        for line in (';{"type":"games"}', channel + ';{"type":"watch"}'):
            [(_, error)] = h.send(eve, line)
            self.assertEqual(error["code"], "forbidden")


class BotTests(SynchronousTestCase):
    def test_lonely_player_gets_bots(self) -> None:
        h = Harness(ServerSettings(bot_after=5, lobby_size=3, rounds=2, hurry=0))
        alone = h.connect()
        h.frames(alone)
        h.clock.advance(4.9)
        self.assertEqual(h.frames(alone), [])
        h.clock.advance(0.1)
        frames = h.frames(alone)
        [matched] = [body for _, body in frames if body["type"] == "matched"]
        self.assertEqual(len(matched["bots"]), 2)
        self.assertEqual(matched["players"][0], alone.client_id)
        self.assertEqual(matched["players"][1:], matched["bots"])
        channel = matched["channel"]
        h.clock.advance(5)  # the first half of the round: both bots moved
        self.assertEqual(kinds(h.frames(alone)), ["moved", "moved"])
        frames = h.send(alone, channel + ';{"type":"move","move":"rock"}')
        result = [body for _, body in frames if body["type"] == "result"][0]
        self.assertEqual(result["timed_out"], [])
        h.clock.advance(5)
        frames = h.frames(alone) + h.send(alone, channel + ';{"type":"move","move":"paper"}')
        self.assertEqual(kinds(frames)[-2:], ["game_over", "closed"])
        self.assertEqual(kinds(h.send(alone, ';{"type":"queue"}')), ["queued"])

    def test_no_bots_when_a_partner_comes(self) -> None:
        h = Harness(ServerSettings(bot_after=5))
        a = h.connect()
        h.clock.advance(3)
        h.connect()  # a partner comes
        matched = [body for _, body in h.frames(a) if body["type"] == "matched"][0]
        self.assertNotIn("bots", matched)
        h.clock.advance(10)
        self.assertEqual(h.server.lobbies.waiting, 0)

    def test_off_by_default(self) -> None:
        h = Harness()
        h.connect()
        h.clock.advance(3600)
        self.assertEqual(h.server.lobbies.waiting, 1)

"""
Players leaving at every point of a round, and lobby privacy: with no
sockets and a L{task.Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from soukets.lobby import LOBBY_ID_BYTES
from soukets.server import ServerSettings

from tests.support import Harness, parse

LEAVE_WAYS = ("disconnect", "unsubscribe")


class DepartureTests(SynchronousTestCase):
    def start(self, players: int = 2):
        self.h = Harness(ServerSettings(lobby_size=players, move_timeout=10, seat_hold=0, hurry=0))
        self.sessions = [self.h.connect() for _ in range(players)]
        self.channel = self.h.frames(self.sessions[0])[2][1]["channel"]
        for session in self.sessions[1:]:
            self.h.frames(session)
        return self.sessions

    def leave(self, session, how: str) -> None:
        if how == "disconnect":
            session.connection_lost()
        else:
            self.h.send(session, self.channel + ';{"type":"unsubscribe"}')

    def move(self, session, shape: str) -> None:
        self.h.send(session, self.channel + ';{"type":"move","move":"%s"}' % shape)

    def types(self, session) -> list[str]:
        return [body["type"] for _, body in self.h.frames(session)]

    def assertNothingPending(self) -> None:
        self.assertEqual(self.h.server.lobbies.lobbies, {})
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_one_v_one_before_and_after_moving(self) -> None:
        for how in LEAVE_WAYS:
            for moved_first in (False, True):
                a, b = self.start()
                if moved_first:
                    self.move(a, "rock")
                    self.h.frames(b)
                self.leave(a, how)
                self.assertEqual(self.types(b), ["left", "game_over", "closed"])
                self.assertNothingPending()

    def test_three_players_leave_before_moving(self) -> None:
        for how in LEAVE_WAYS:
            a, b, c = self.start(3)
            self.move(a, "rock")
            self.move(b, "paper")
            self.h.frames(a)
            self.leave(c, how)
            # The two left have moved: the round ends at once.
            self.assertEqual(self.types(a), ["left", "result", "game_over", "closed"])
            self.assertNothingPending()

    def test_three_players_leave_after_moving(self) -> None:
        a, b, c = self.start(3)
        self.move(c, "scissors")
        self.h.frames(a)
        self.leave(c, "disconnect")
        self.assertEqual(self.types(a), ["left"])
        self.h.clock.advance(10)
        frames = self.h.frames(a)
        result = frames[0][1]
        self.assertEqual(result["moves"][c.client_id], None)
        self.assertEqual(result["timed_out"], [a.client_id, b.client_id, c.client_id])
        self.assertNothingPending()

    def test_leave_during_result(self) -> None:
        """
        A player whose connection drops while the game is sending the last
        move's frames (the moved, then the result, as one step) leaves the
        others with the whole ending: the departure waits for the step.
        """
        a, b = self.start()
        self.move(a, "rock")
        original = a.output

        def drop_on_first_send(data: Any) -> None:
            original(data)
            a.output = original
            a.connection_lost()  # in the middle of the game's step

        a.output = drop_on_first_send
        self.h.frames(b)
        b.data_received((self.channel + ';{"type":"move","move":"paper"}\n').encode())
        frames = self.h.frames(b)
        self.assertEqual(
            [body["type"] for _, body in frames], ["moved", "result", "game_over", "closed"]
        )
        self.assertEqual(frames[2][1]["reason"], "completed")
        self.assertNothingPending()

    def test_leave_between_rounds(self) -> None:
        self.h = Harness(ServerSettings(rounds=3, move_timeout=10, seat_hold=0, hurry=0))
        a, b = self.h.connect(), self.h.connect()
        channel = self.h.frames(a)[2][1]["channel"]
        self.channel = channel
        self.move(a, "rock")
        self.move(b, "rock")
        self.h.frames(b)
        self.leave(a, "disconnect")
        self.assertEqual(self.types(b), ["left", "game_over", "closed"])
        self.assertNothingPending()


class LobbyPrivacyTests(SynchronousTestCase):
    def test_outsider_learns_nothing(self) -> None:
        """
        A client that is not a player never sees a lobby id, whatever it
        does; and ids carry 128 bits.
        """
        self.assertGreaterEqual(LOBBY_ID_BYTES * 8, 128)
        # (With spectators on, running games are listed for anyone to
        # watch; with them off, a lobby is its players' alone.)
        h = Harness(ServerSettings(spectators=False))
        eve = h.connect()
        h.send(eve, ';{"type":"unqueue"}')
        a, b = h.connect(), h.connect()
        channel = h.frames(a)[2][1]["channel"]
        fake = "lobby:" + "Q" * 22

        def outsider_sees(name: str) -> bytes:
            # Everything the outsider is sent, its own answers included.
            seen = h.take(eve)
            for line in (
                ';{"type":"stats"}',
                'room;{"type":"subscribe"}',
                name + ';{"type":"subscribe"}',
                name + ';{"type":"publish","data":"x"}',
                name + ';{"type":"move","move":"rock"}',
                name + ';{"type":"unsubscribe"}',
                name + ';{"type":"watch"}',
                name + ';{"type":"who"}',
                'room;{"type":"unsubscribe"}',
            ):
                eve.data_received(line.encode() + b"\n")
                seen += h.take(eve)
            return seen

        live = outsider_sees(channel)
        unknown = outsider_sees(fake)
        h.send(a, channel + ';{"type":"move","move":"rock"}')
        live += h.take(eve)
        # The live lobby answers exactly as one that does not exist...
        self.assertEqual(live.replace(channel.encode(), b"ID"), unknown.replace(fake.encode(), b"ID"))
        # ...and nothing of the game reaches the outsider.
        types = [body["type"] for _, body in parse(live)]
        self.assertEqual(set(types), {"stats", "subscribed", "unsubscribed", "error"})
        self.assertNotIn(b"rock", live.replace(b'"move":"rock"', b""))
        self.assertEqual(h.server.hub.get(channel).members.keys(), {a, b})

    def test_ids_differ(self) -> None:
        h = Harness()
        ids = set()
        for _ in range(50):
            a = h.connect()
            h.connect()  # its partner
            ids.add(h.frames(a)[2][1]["channel"])
        self.assertEqual(len(ids), 50)


class DepartureProperties(SynchronousTestCase):
    """
    Departures a second way: whatever the order of moves, departures (some
    of them while the game is sending to the one leaving) and timeouts,
    every player still there sees the game end exactly once, and nothing
    is left behind.
    """

    def test_any_order(self) -> None:
        from hypothesis import given, settings, strategies as st

        steps = st.lists(
            st.tuples(
                st.sampled_from(["move", "leave", "leave-while-sent-to", "tick"]),
                st.integers(0, 2),
                st.sampled_from(["rock", "paper", "scissors"]),
            ),
            max_size=12,
        )

        @settings(max_examples=200, deadline=None)
        @given(steps)
        def check(plan) -> None:
            h = Harness(ServerSettings(lobby_size=3, rounds=2, move_timeout=10, seat_hold=0, hurry=0))
            players = [h.connect() for _ in range(3)]
            channel = [b for _, b in h.frames(players[0]) if b["type"] == "matched"][0]["channel"]
            seen = {p: [] for p in players}
            gone: set = set()

            def collect() -> None:
                for p in players:
                    seen[p] += [b["type"] for _, b in h.frames(p)]

            for action, who, shape in plan:
                player = players[who]
                if action == "tick":
                    h.clock.advance(10)
                elif player in gone:
                    continue
                elif action == "move":
                    player.data_received(f'{channel};{{"type":"move","move":"{shape}"}}\n'.encode())
                elif action == "leave":
                    gone.add(player)
                    player.connection_lost()
                else:
                    # Leaves as the next frame is handed to it.
                    original = player.output

                    def leave_on_send(data, player=player, original=original):
                        original(data)
                        player.output = original
                        player.connection_lost()

                    player.output = leave_on_send
                    gone.add(player)
                collect()
            for _ in range(3):
                h.clock.advance(10)
            collect()
            lobbies = h.server.lobbies
            stayed = [p for p in players if p not in gone and p.connected]
            # Two rounds of 10 s are over by now, whatever happened.
            self.assertEqual(lobbies.lobbies, {})
            for p in stayed:
                self.assertEqual(seen[p].count("game_over"), 1, seen[p])
                self.assertEqual(seen[p].count("closed"), 1, seen[p])
            self.assertEqual(lobbies._lobby_of, {})
            self.assertIsNone(h.server.hub.get(channel))

        check()

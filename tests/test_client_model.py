"""
Tests for L{soukets.client.model.PlayerView}: what the client says for each
server frame, and what it sends for what is typed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from soukets.client.model import PlayerView, Quit, Send, Stage


class PlayerViewTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.said: list[str] = []
        self.view = PlayerView(self.clock, self.said.append, name="alice", server="soukets 127.0.0.1:7777")

    def frame(self, on: str, **body: Any) -> list[Send]:
        return self.view.received(on, body)

    def heard(self) -> list[str]:
        said, self.said[:] = list(self.said), []
        return said

    def match(self, players: tuple[str, ...] = ("a", "b"), names: dict | None = None) -> None:
        self.frame("", type="welcome", client="a", lobby_size=len(players), move_timeout=10.0, game="rps")
        self.frame("", type="queued", waiting=1, lobby_size=len(players))
        self.frame("", type="matched", channel="LOBBY123", players=list(players), you="a",
                   names=names or {"a": "a", "b": "bob", "c": "carol"})
        self.frame("LOBBY123", type="round", round=1, timeout=10.0)
        self.heard()

    def test_welcome_says_hello_and_queues(self) -> None:
        sends = self.frame("", type="welcome", client="a", lobby_size=2, move_timeout=10.0, game="rps")
        self.assertEqual(sends, [
            Send("", {"type": "hello", "name": "alice"}),
            Send("", {"type": "queue", "id": "auto-queue"}),
        ])
        self.frame("", type="queued", waiting=1, lobby_size=2)
        # The server had queued us already: that answer is not news.
        self.frame("", type="error", code="already_queued", message="m", id="auto-queue")
        self.assertEqual(self.heard(), [
            "connected to soukets 127.0.0.1:7777 as alice — waiting for 1 more player…"
        ])

    def test_matched(self) -> None:
        self.frame("", type="welcome", client="a", lobby_size=3)
        sends = self.frame("", type="matched", channel="LOBBY123", players=["a", "b", "c"],
                           you="a", names={"a": "a", "b": "bob", "c": "carol"})
        self.assertEqual(self.heard(), ["matched in lobby LOBB… with bob and carol"])
        self.assertEqual(sends, [Send("LOBBY123", {"type": "publish", "data": {"name": "alice"}})])

    def test_countdown(self) -> None:
        """
        The round's time left counts down with the clock, rounded up.
        """
        self.match()
        self.assertEqual(self.view.status(), "round 1, 10 s — r/p/s")
        self.clock.advance(2.5)
        self.assertEqual(self.view.seconds_left(), 8)
        self.assertEqual(self.view.typed("r"), [Send("LOBBY123", {"type": "move", "move": "rock"})])
        self.frame("LOBBY123", type="moved", player="a")
        self.assertEqual(self.heard(), ["you played rock, waiting for bob… (8 s left)"])
        self.assertEqual(self.view.status(), "round 1, 8 s — waiting")
        self.clock.advance(20)
        self.assertEqual(self.view.seconds_left(), 0)

    def test_full_words_and_keys(self) -> None:
        self.match()
        self.assertEqual(self.view.typed(" PAPER "), [Send("LOBBY123", {"type": "move", "move": "paper"})])
        self.assertEqual(self.view.typed("s"), [])
        self.assertEqual(self.heard(), ["you already played paper this round"])

    def result(self, moves: dict, winners: list) -> list[str]:
        self.frame("LOBBY123", type="result", round=1, moves=moves, winners=winners,
                   timed_out=[p for p, m in moves.items() if m is None])
        return self.heard()

    def test_win_lose_draw(self) -> None:
        self.match()
        self.assertEqual(self.result({"a": "rock", "b": "scissors"}, ["a"]),
                         ["round 1: bob played scissors — you win"])
        self.assertEqual(self.result({"a": "rock", "b": "paper"}, ["b"]),
                         ["round 1: bob played paper — you lose"])
        self.assertEqual(self.result({"a": "rock", "b": "rock"}, []),
                         ["round 1: bob played rock — draw"])

    def test_timeouts(self) -> None:
        self.match()
        self.assertEqual(self.result({"a": None, "b": "rock"}, ["b"]), [
            "you did not play in time",
            "round 1: bob played rock — you lose",
        ])
        self.assertEqual(self.result({"a": "rock", "b": None}, ["a"]),
                         ["round 1: bob did not play — you win"])
        self.assertEqual(self.result({"a": None, "b": None}, []),
                         ["you did not play in time", "round 1: bob did not play — nobody wins"])

    def test_three_players(self) -> None:
        self.match(("a", "b", "c"))
        self.assertEqual(
            self.result({"a": "rock", "b": "rock", "c": "scissors"}, ["a", "b"]),
            ["round 1: bob played rock and carol played scissors — you win (with bob)"],
        )
        self.assertEqual(
            self.result({"a": "scissors", "b": "rock", "c": "rock"}, ["b", "c"]),
            ["round 1: bob played rock and carol played rock — bob and carol win"],
        )
        self.assertEqual(
            self.result({"a": "rock", "b": "paper", "c": "scissors"}, []),
            ["round 1: bob played paper and carol played scissors — nobody wins"],
        )

    def test_game_over_and_again(self) -> None:
        self.match()
        self.frame("LOBBY123", type="game_over", reason="completed",
                   scores={"a": 1, "b": 0}, winners=["a"])
        self.frame("LOBBY123", type="closed")
        self.assertEqual(self.heard(), ["game over — you won: alice 1, bob 0. Play again? [y/n]"])
        self.assertIs(self.view.stage, Stage.ASKING)
        self.assertEqual(self.view.typed("y"), [Send("", {"type": "queue"})])
        self.frame("", type="queued", waiting=1, lobby_size=2)
        self.assertEqual(self.heard(), ["queued — waiting for 1 more player…"])

    def test_game_over_no(self) -> None:
        self.match()
        self.frame("LOBBY123", type="game_over", reason="player_left", scores={"a": 0, "b": 0}, winners=["a"])
        self.assertEqual(self.heard(), ["game over — the others left; you won: alice 0, bob 0. Play again? [y/n]"])
        self.assertIsInstance(self.view.typed("n"), Quit)

    def test_names_learned(self) -> None:
        """
        A match whose other players' names are not known yet is announced
        once they are ("with bob", not with an id), what came meanwhile
        after it.
        """
        self.match(names={"a": "a", "b": "b"})
        self.frame("LOBBY123", type="message", **{"from": "b", "data": {"name": "bob"}})
        self.frame("LOBBY123", type="message", **{"from": "b", "data": "hi"})
        self.assertEqual(self.heard(), [
            "matched in lobby LOBB… with bob",
            "round 1 — your move [r]ock [p]aper [s]cissors — 10 s",
            "[lobby] bob: hi",
        ])
        # A later new name is said as such.
        self.frame("LOBBY123", type="message", **{"from": "b", "data": {"name": "bobby"}})
        self.assertEqual(self.heard(), ["(bob is bobby)"])

    def test_names_never_told(self) -> None:
        """
        A player who never tells its name (telnet) is named by its id,
        half a second later.
        """
        self.match(names={"a": "a", "b": "b"})
        self.assertEqual(self.heard(), [])
        self.clock.advance(0.5)
        self.assertEqual(self.heard()[0], "matched in lobby LOBB… with b")

    def test_chat_and_channels(self) -> None:
        self.match()
        self.view.typed("r")
        self.assertEqual(self.view.typed("good luck"), [Send("LOBBY123", {"type": "publish", "data": "good luck"})])
        self.assertEqual(self.view.typed("/sub news"), [Send("news", {"type": "subscribe"})])
        self.assertEqual(self.view.typed("/unsub news"), [Send("news", {"type": "unsubscribe"})])
        self.assertEqual(self.view.typed("/pub news hello all"),
                         [Send("news", {"type": "publish", "data": "hello all"})])
        self.assertEqual(self.view.typed("/queue"), [Send("", {"type": "queue"})])
        self.assertEqual(self.view.typed("/unqueue"), [Send("", {"type": "unqueue"})])
        self.assertEqual(self.view.typed("/sub bad name"), [])
        self.frame("news", type="message", **{"from": "x-9", "data": {"k": 1}})
        self.frame("news", type="subscribed", members=3)
        self.assertEqual(self.heard()[-2:], ['[news] x-9: {"k":1}', "subscribed to news (3 members)"])
        self.assertIsInstance(self.view.typed("/quit"), Quit)

    def test_ping(self) -> None:
        [send] = self.view.typed("/ping")
        self.clock.advance(0.0123)
        self.frame("", type="pong", id=send.payload["id"])
        self.assertEqual(self.heard(), ["pong in 12.3 ms"])

    def test_server_ping_answered(self) -> None:
        self.assertEqual(self.frame("", type="ping"), [Send("", {"type": "pong"})])

    def test_errors_in_words(self) -> None:
        self.frame("room", type="error", code="forbidden", message="only its players")
        self.assertEqual(self.heard(), ["error on room: only its players"])

    def test_held_moves(self) -> None:
        """
        Scripts may type their moves ahead; each round takes the next one.
        """
        self.view.hold_moves = True
        self.view.typed("p")
        self.frame("", type="welcome", client="a", lobby_size=2)
        self.frame("", type="matched", channel="L", players=["a", "b"], you="a")
        sends = self.frame("L", type="round", round=1, timeout=10.0)
        self.assertEqual(sends, [Send("L", {"type": "move", "move": "paper"})])

    def test_several_held_moves_in_order(self) -> None:
        """
        Moves typed ahead are played one a round, first typed first, even
        when typed during a round the script already moved in.
        """
        self.view.hold_moves = True
        for key in ("r", "p", "s"):
            self.view.typed(key)
        self.frame("", type="welcome", client="a", lobby_size=2)
        self.frame("", type="matched", channel="L", players=["a", "b"], you="a")
        played = []
        for number in (1, 2, 3):
            sends = self.frame("L", type="round", round=number, timeout=10.0)
            played += [s.payload["move"] for s in sends]
            self.frame("L", type="moved", player="a")
            self.frame("L", type="result", round=number, moves={"a": played[-1], "b": None},
                       winners=["a"], timed_out=["b"])
        self.assertEqual(played, ["rock", "paper", "scissors"])
        self.assertFalse(any("already played" in line for line in self.said))

    def test_typed_during_round_held_for_next(self) -> None:
        self.view.hold_moves = True
        self.frame("", type="welcome", client="a", lobby_size=2)
        self.frame("", type="matched", channel="L", players=["a", "b"], you="a")
        self.frame("L", type="round", round=1, timeout=10.0)
        self.assertEqual(self.view.typed("r"), [Send("L", {"type": "move", "move": "rock"})])
        self.assertEqual(self.view.typed("s"), [])
        sends = self.frame("L", type="round", round=2, timeout=10.0)
        self.assertEqual(sends, [Send("L", {"type": "move", "move": "scissors"})])


class ResumeAndExtrasTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.said: list[str] = []
        self.view = PlayerView(self.clock, self.said.append, name="alice", server="s")

    def frame(self, on: str, **body: Any) -> list[Send]:
        return self.view.received(on, body)

    def test_resume_after_reconnect(self) -> None:
        self.frame("", type="welcome", client="a", lobby_size=2)
        self.frame("", type="matched", channel="L", players=["a", "b"], you="a", resume="T1")
        self.frame("L", type="round", round=1, timeout=10.0)
        self.assertEqual(self.view.resume_token, "T1")
        self.view.resuming = True
        sends = self.frame("", type="welcome", client="x-9", lobby_size=2)
        self.assertEqual(sends, [Send("", {"type": "resume", "token": "T1", "id": "resume"})])
        self.frame("", type="resumed", channel="L", you="a", players=["a", "b"], resume="T2")
        self.assertEqual((self.view.me, self.view.resume_token, self.view.resuming), ("a", "T2", False))
        self.assertIn("back in the game: your seat was kept", self.said)

    def test_seat_gone(self) -> None:
        self.view.resume_token = "T1"
        self.view.resuming = True
        self.frame("", type="error", code="bad_token", message="gone", id="resume")
        self.assertTrue(self.view.seat_lost)

    def test_hurry_alert(self) -> None:
        self.frame("", type="welcome", client="a", lobby_size=2)
        self.frame("", type="matched", channel="L", players=["a", "b"], you="a")
        self.frame("L", type="round", round=1, timeout=10.0)
        self.assertFalse(self.view.alert)
        self.frame("L", type="hurry", round=1, remaining=3.0)
        self.assertTrue(self.view.alert)
        self.assertIn("HURRY", self.view.status())
        self.view.typed("r")
        self.assertFalse(self.view.alert)
        self.frame("L", type="round", round=2, timeout=10.0)
        self.assertFalse(self.view.alert)

    def test_commands(self) -> None:
        self.frame("", type="welcome", client="a", lobby_size=2)
        self.assertEqual(self.view.typed("/who lounge"), [Send("lounge", {"type": "who"})])
        self.assertEqual(self.view.typed("/games"), [Send("", {"type": "games"})])
        self.assertEqual(self.view.typed("/watch lobby:X"), [Send("lobby:X", {"type": "watch"})])
        self.frame("lobby:X", type="watching", players=["p", "q"], round=1)
        self.assertEqual(self.view.typed("/unwatch"), [Send("lobby:X", {"type": "unwatch"})])
        self.frame("lounge", type="members", count=2, members=[{"client": "p", "name": "pat"}, {"client": "q", "name": "q"}])
        self.assertIn("2 members on lounge: pat and q", self.said)

"""
Tests for L{soukets.games.rps}: the rules, and rounds driven by a
L{task.Clock}.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from soukets.frames import ALREADY_MOVED, INVALID_MOVE, UNKNOWN_TYPE, Frame, ProtocolError
from soukets.games.base import GameOver, GameSettings, IGame, IGameContext
from soukets.games.rps import Phase, RockPaperScissors, game_winners, judge


class JudgeTests(SynchronousTestCase):
    def test_two_players(self) -> None:
        self.assertEqual(judge({"a": "rock", "b": "scissors"}), ("a",))
        self.assertEqual(judge({"a": "rock", "b": "paper"}), ("b",))
        self.assertEqual(judge({"a": "scissors", "b": "paper"}), ("a",))
        self.assertEqual(judge({"a": "rock", "b": "rock"}), ())

    def test_absent_player_loses(self) -> None:
        """
        In a 1v1, a player who moved beats one who did not; nobody moving
        means nobody wins.
        """
        self.assertEqual(judge({"a": None, "b": "paper"}), ("b",))
        self.assertEqual(judge({"a": None, "b": None}), ())

    def test_three_players_two_shapes(self) -> None:
        self.assertEqual(judge({"a": "rock", "b": "rock", "c": "scissors"}), ("a", "b"))
        self.assertEqual(judge({"a": "rock", "b": "paper", "c": "rock"}), ("b",))

    def test_three_shapes_is_a_draw(self) -> None:
        self.assertEqual(judge({"a": "rock", "b": "paper", "c": "scissors"}), ())

    def test_three_shapes_beat_the_absent(self) -> None:
        moves = {"a": "rock", "b": "paper", "c": "scissors", "d": None}
        self.assertEqual(judge(moves), ("a", "b", "c"))

    def test_one_shape_beats_the_absent(self) -> None:
        self.assertEqual(judge({"a": "rock", "b": "rock", "c": None}), ("a", "b"))
        self.assertEqual(judge({"a": "rock", "b": "rock", "c": "rock"}), ())

    def test_two_shapes_with_absent(self) -> None:
        """
        With exactly two shapes, only the winning shape wins, absent or not.
        """
        self.assertEqual(judge({"a": "rock", "b": "paper", "c": None}), ("b",))

    def test_game_winners(self) -> None:
        self.assertEqual(game_winners({"a": 2, "b": 2, "c": 1}, ["a", "b", "c"]), ("a", "b"))
        self.assertEqual(game_winners({"a": 2, "b": 1}, ["b"]), ("b",))
        self.assertEqual(game_winners({"a": 0, "b": 0}, ["a", "b"]), ())


@implementer(IGameContext)
@attrs.define
class FakeLobby:
    """
    A lobby that records what the game sends.
    """

    players: tuple[str, ...]
    settings: GameSettings
    clock: Clock = attrs.field(factory=Clock)
    channel: str = "L"
    sent: list[dict[str, Any]] = attrs.field(factory=list)
    private: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)
    acted: list[tuple[float, str, dict[str, Any]]] = attrs.field(factory=list)
    ended: list[GameOver | None] = attrs.field(factory=list)
    gone: set[str] = attrs.field(factory=set)

    def send_to(self, player: str, payload: Mapping[str, Any]) -> None:
        self.private.append((player, dict(payload)))

    def act(self, player: str, payload: Mapping[str, Any]) -> None:
        self.acted.append((self.clock.seconds(), player, dict(payload)))

    def present(self) -> tuple[str, ...]:
        return tuple(p for p in self.players if p not in self.gone)

    def send(self, payload: Mapping[str, Any]) -> None:
        self.sent.append(dict(payload))

    def end(self, over: GameOver | None) -> None:
        self.ended.append(over)

    def take(self) -> list[dict[str, Any]]:
        sent, self.sent = self.sent, []
        return sent


def move(shape: Any) -> Frame:
    return Frame("L", "move", {"type": "move", "move": shape})


class RockPaperScissorsTests(SynchronousTestCase):
    def start(self, players: str = "ab", timeout: float = 10.0, rounds: int = 1, hurry: float = 0.0):
        self.lobby = FakeLobby(tuple(players), GameSettings(timeout, rounds, hurry))
        self.game = RockPaperScissors(self.lobby)
        verifyObject(IGameContext, self.lobby)
        verifyObject(IGame, self.game)
        self.game.start()

    def test_round_announced(self) -> None:
        self.start()
        self.assertEqual(self.lobby.take(), [{"type": "round", "round": 1, "timeout": 10.0}])

    def test_result_when_last_move_arrives(self) -> None:
        """
        The result goes out as soon as every player has moved, before the
        timeout; nobody learns a move before then.
        """
        self.start()
        self.lobby.take()
        self.game.received("a", move("rock"))
        self.assertEqual(self.lobby.take(), [{"type": "moved", "player": "a"}])
        self.lobby.clock.advance(3)
        self.game.received("b", move("scissors"))
        self.assertEqual(
            self.lobby.take(),
            [
                {"type": "moved", "player": "b"},
                {
                    "type": "result",
                    "round": 1,
                    "moves": {"a": "rock", "b": "scissors"},
                    "winners": ["a"],
                    "timed_out": [],
                },
            ],
        )
        self.assertEqual(self.lobby.ended, [GameOver("completed", {"a": 1, "b": 0}, ("a",))])
        self.assertEqual(self.lobby.clock.getDelayedCalls(), [])
        self.assertIs(self.game.phase, Phase.OVER)

    def test_result_at_exactly_the_timeout(self) -> None:
        self.start(timeout=10.0)
        self.game.received("a", move("paper"))
        self.lobby.take()
        self.lobby.clock.advance(9.999)
        self.assertEqual(self.lobby.take(), [])
        self.lobby.clock.advance(0.001)
        self.assertEqual(
            self.lobby.take(),
            [
                {
                    "type": "result",
                    "round": 1,
                    "moves": {"a": "paper", "b": None},
                    "winners": ["a"],
                    "timed_out": ["b"],
                }
            ],
        )
        self.assertEqual(self.lobby.ended[0].winners, ("a",))

    def test_nobody_moves(self) -> None:
        self.start(timeout=2)
        self.lobby.take()
        self.lobby.clock.advance(2)
        [result] = self.lobby.take()
        self.assertEqual((result["winners"], result["timed_out"]), ([], ["a", "b"]))
        self.assertEqual(self.lobby.ended, [GameOver("completed", {"a": 0, "b": 0}, ())])

    def test_several_rounds(self) -> None:
        """
        Each round is announced after the previous result, with its own
        timer; scores add up over the rounds.
        """
        self.start(rounds=3, timeout=5)
        for shapes in (("rock", "paper"), ("rock", "scissors"), ("paper", "rock")):
            self.game.received("a", move(shapes[0]))
            self.game.received("b", move(shapes[1]))
        sent = self.lobby.take()
        self.assertEqual([p["round"] for p in sent if p["type"] == "round"], [1, 2, 3])
        self.assertEqual(self.lobby.ended, [GameOver("completed", {"a": 2, "b": 1}, ("a",))])
        self.assertEqual(self.lobby.clock.getDelayedCalls(), [])

    def test_timer_restarts_each_round(self) -> None:
        self.start(rounds=2, timeout=5)
        self.lobby.clock.advance(4)
        self.game.received("a", move("rock"))
        self.game.received("b", move("rock"))
        self.lobby.take()
        self.lobby.clock.advance(4.5)
        self.assertEqual(self.lobby.take(), [])
        self.lobby.clock.advance(0.5)
        self.assertEqual(self.lobby.take()[0]["timed_out"], ["a", "b"])

    def test_bad_moves(self) -> None:
        self.start()
        for bad in ("lizard", None, 3, "Rock"):
            error = self.assertRaises(ProtocolError, self.game.received, "a", move(bad))
            self.assertEqual(error.code, INVALID_MOVE)
        self.game.received("a", move("rock"))
        error = self.assertRaises(ProtocolError, self.game.received, "a", move("paper"))
        self.assertEqual(error.code, ALREADY_MOVED)
        error = self.assertRaises(
            ProtocolError, self.game.received, "a", Frame("L", "dance", {"type": "dance"})
        )
        self.assertEqual(error.code, UNKNOWN_TYPE)

    def test_three_players(self) -> None:
        self.start(players="abc")
        for player, shape in zip("abc", ("rock", "rock", "scissors")):
            self.game.received(player, move(shape))
        result = [p for p in self.lobby.take() if p["type"] == "result"][0]
        self.assertEqual(result["winners"], ["a", "b"])
        self.assertEqual(self.lobby.ended[0].winners, ("a", "b"))

    def leave(self, player: str) -> None:
        self.lobby.gone.add(player)
        self.game.player_left(player)

    def test_leave_one_v_one(self) -> None:
        """
        When fewer than two remain, the game ends at once, the remaining
        player winning.
        """
        self.start()
        self.lobby.take()
        self.leave("a")
        self.assertEqual(self.lobby.take(), [])
        self.assertEqual(self.lobby.ended, [GameOver("player_left", {"a": 0, "b": 0}, ("b",))])
        self.assertEqual(self.lobby.clock.getDelayedCalls(), [])

    def test_leave_after_moving(self) -> None:
        """
        A player who leaves after moving counts as timed out from then on.
        """
        self.start(players="abc")
        self.game.received("a", move("rock"))
        self.game.received("b", move("scissors"))
        self.lobby.take()
        self.leave("a")
        self.assertEqual(self.lobby.take(), [])  # c has not moved yet
        self.game.received("c", move("paper"))
        result = self.lobby.take()[-1]
        self.assertEqual(result["moves"], {"a": None, "b": "scissors", "c": "paper"})
        self.assertEqual(result["timed_out"], ["a"])
        self.assertEqual(result["winners"], ["b"])
        self.assertEqual(self.lobby.ended[0].winners, ("b",))

    def test_leave_completes_round(self) -> None:
        """
        If every remaining player has moved when one leaves, the round ends.
        """
        self.start(players="abc", rounds=2)
        self.game.received("a", move("rock"))
        self.game.received("b", move("rock"))
        self.lobby.take()
        self.leave("c")
        sent = self.lobby.take()
        self.assertEqual(sent[0]["timed_out"], ["c"])
        self.assertEqual(sent[0]["winners"], ["a", "b"])
        self.assertEqual(sent[1], {"type": "round", "round": 2, "timeout": 10.0})

    def test_leave_then_time_out(self) -> None:
        self.start(players="abc")
        self.leave("c")
        self.lobby.take()
        self.lobby.clock.advance(10)
        self.assertEqual(self.lobby.take()[0]["timed_out"], ["a", "b", "c"])

    def test_stop(self) -> None:
        self.start()
        self.game.stop("shutdown")
        self.assertEqual(self.lobby.ended, [GameOver("shutdown", {"a": 0, "b": 0}, ())])
        self.assertEqual(self.lobby.clock.getDelayedCalls(), [])
        self.game.stop("shutdown")
        self.game.player_left("a")
        self.assertEqual(len(self.lobby.ended), 1)


class DepartedPlayerTests(SynchronousTestCase):
    def test_leaver_with_best_score_cannot_win(self) -> None:
        """
        A player who left holding the best score is not among the final
        winners: those still present with the best score among them are.
        """
        lobby = FakeLobby(("a", "b", "c"), GameSettings(10.0, 2))
        game = RockPaperScissors(lobby)
        game.start()
        game.received("a", move("rock"))
        game.received("b", move("scissors"))
        game.received("c", move("scissors"))  # a wins round 1
        lobby.gone.add("a")
        game.player_left("a")
        game.received("b", move("paper"))
        game.received("c", move("rock"))  # b wins round 2
        [over] = lobby.ended
        self.assertEqual(dict(over.scores), {"a": 1, "b": 1, "c": 0})
        self.assertEqual(tuple(over.winners), ("b",))

    def test_leaver_alone_on_top(self) -> None:
        lobby = FakeLobby(("a", "b", "c"), GameSettings(10.0, 2))
        game = RockPaperScissors(lobby)
        game.start()
        game.received("a", move("rock"))
        game.received("b", move("scissors"))
        game.received("c", move("scissors"))
        lobby.gone.add("a")
        game.player_left("a")
        lobby.clock.advance(10)  # nobody moves in round 2
        [over] = lobby.ended
        self.assertEqual(tuple(over.winners), ())


class JudgeProperties(SynchronousTestCase):
    """
    The rules, a second way: judge against a plain statement of them.
    """

    def test_against_model(self) -> None:
        from hypothesis import given, strategies as st

        @given(st.lists(st.sampled_from(["rock", "paper", "scissors", None]), min_size=2, max_size=6))
        def check(shapes: list) -> None:
            moves = {f"p{i}": s for i, s in enumerate(shapes)}
            played = {s for s in shapes if s}
            absent = None in shapes
            if len(played) == 2:
                beaten = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
                top = next(s for s in played if beaten[s] in played)
                expected = [p for p, s in moves.items() if s == top]
            elif absent:
                expected = [p for p, s in moves.items() if s]
            else:
                expected = []
            self.assertEqual(list(judge(moves)), expected)
            for p in judge(moves):
                self.assertIsNotNone(moves[p])  # the absent never win

        check()


class HurryTests(SynchronousTestCase):
    def start(self, timeout: float = 10.0, hurry: float = 3.0, rounds: int = 1) -> tuple[FakeLobby, RockPaperScissors]:
        lobby = FakeLobby(("a", "b", "c"), GameSettings(timeout, rounds, hurry))
        game = RockPaperScissors(lobby)
        game.start()
        return lobby, game

    def test_exactly_when_left(self) -> None:
        """
        With 3 s left, each player who has not moved is warned once, alone;
        nobody else sees it.
        """
        lobby, game = self.start()
        game.received("a", move("rock"))
        lobby.clock.advance(6.999)
        self.assertEqual(lobby.private, [])
        lobby.clock.advance(0.001)
        self.assertEqual(lobby.private, [
            ("b", {"type": "hurry", "round": 1, "remaining": 3.0}),
            ("c", {"type": "hurry", "round": 1, "remaining": 3.0}),
        ])
        self.assertNotIn("hurry", [p["type"] for p in lobby.sent])
        lobby.clock.advance(2.9)
        self.assertEqual(len(lobby.private), 2)  # once

    def test_never_after_everyone_moved(self) -> None:
        lobby, game = self.start(rounds=2)
        for player in "abc":
            game.received(player, move("rock"))
        lobby.clock.advance(6.999)  # round 2 began at 0: not yet
        self.assertEqual(lobby.private, [])
        for player in "abc":
            game.received(player, move("paper"))
        lobby.clock.advance(20)
        self.assertEqual(lobby.private, [])
        self.assertEqual(lobby.clock.getDelayedCalls(), [])

    def test_short_rounds_and_off(self) -> None:
        for timeout, hurry in ((3.0, 3.0), (2.0, 3.0), (10.0, 0.0)):
            lobby, game = self.start(timeout=timeout, hurry=hurry)
            lobby.clock.advance(timeout)
            self.assertEqual(lobby.private, [], (timeout, hurry))


class BotTests(SynchronousTestCase):
    def test_bot_moves_in_first_half(self) -> None:
        """
        A bot plays a legal move within the first half of each round, and
        never before the round started.
        """
        from soukets.games.rps import RockPaperScissorsBot

        for seed in range(20):
            lobby = FakeLobby(("a", "bot"), GameSettings(10.0, 3, 0))
            acted = lobby.acted
            game = RockPaperScissors(lobby)
            bot = RockPaperScissorsBot(lobby, "bot")
            bot.random.seed(seed)
            lobby.clock.advance(1)
            self.assertEqual(acted, [])
            game.start()
            for payload in lobby.take():
                bot.observe(payload)
            lobby.clock.advance(5.0)
            [(when, player, frame)] = acted
            self.assertEqual(player, "bot")
            self.assertLessEqual(when, 1 + 5.0)
            self.assertGreater(when, 1)
            self.assertIn(frame["move"], ("rock", "paper", "scissors"))

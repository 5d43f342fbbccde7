"""
Rock-paper-scissors: the rules as a pure function (L{judge}), and the game
that runs them round by round in a lobby (L{RockPaperScissors}).
"""

from __future__ import annotations

import enum
import random
import secrets
from typing import Any, Mapping, Sequence

import attrs
from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

from soukets.frames import (
    ALREADY_MOVED,
    INVALID_MOVE,
    NOT_IN_GAME,
    UNKNOWN_TYPE,
    Frame,
    ProtocolError,
    quote,
)
from soukets.games.base import (
    COMPLETED,
    PLAYER_LEFT,
    GameOver,
    IBot,
    IGame,
    IGameContext,
)

SHAPES = ("rock", "paper", "scissors")
BEATS = {"rock": "scissors", "paper": "rock", "scissors": "paper"}
"""Each shape, and the shape it beats."""


def judge(moves: Mapping[str, str | None]) -> tuple[str, ...]:
    """
    The winners of one round.

    @param moves: every player's shape, or L{None} for a player who did not
        move in time (who cannot win).
    @return: the winning players, in the order of C{moves}.  If exactly two
        shapes were played, those who chose the winning one; otherwise
        everyone who moved if somebody did not (they beat the absent), and
        nobody if everybody moved.
    """
    played = {player: move for player, move in moves.items() if move}
    shapes = set(played.values())
    if len(shapes) == 2:
        first, second = shapes
        winning = first if BEATS[first] == second else second
        return tuple(p for p, move in played.items() if move == winning)
    if len(played) < len(moves):
        return tuple(played)
    return ()


def game_winners(
    scores: Mapping[str, int], eligible: Sequence[str]
) -> tuple[str, ...]:
    """
    The players among C{eligible} with the best score, if it is above zero.
    """
    best = max((scores[p] for p in eligible), default=0)
    if best == 0:
        return ()
    return tuple(p for p in eligible if scores[p] == best)


class Phase(enum.Enum):
    """
    Where a game of rock-paper-scissors is.
    """

    READY = "ready"  # made, not started
    MOVING = "moving"  # a round is waiting for moves
    OVER = "over"


@implementer(IGame)
@attrs.define
class RockPaperScissors:
    """
    A game of C{settings.rounds} rounds of rock-paper-scissors.  Each round
    ends when every present player has moved, or C{settings.move_timeout}
    seconds after it began, whichever comes first.
    """

    context: IGameContext
    phase: Phase = Phase.READY
    round: int = 0
    scores: dict[str, int] = attrs.field(factory=dict)
    _moves: dict[str, str] = attrs.field(factory=dict)
    _deadline: IDelayedCall | None = None  # the warning's, then the deadline's
    _ends_at: float = 0.0

    def start(self) -> None:
        self.scores = {player: 0 for player in self.context.players}
        self._next_round()

    def received(self, player: str, frame: Frame) -> None:
        if frame.type != "move":
            raise ProtocolError(
                UNKNOWN_TYPE,
                f"unknown frame type {quote(frame.type)} in a rock-paper-scissors "
                'lobby; play with {"type":"move","move":"rock"}, or publish',
            )
        if self.phase is not Phase.MOVING:
            raise ProtocolError(NOT_IN_GAME, "this game is over")
        move = frame.body.get("move")
        if move not in SHAPES:
            raise ProtocolError(
                INVALID_MOVE,
                f"{quote(move)} is not a move; play rock, paper or scissors, "
                f'e.g. {self.context.channel};{{"type":"move","move":"rock"}}',
            )
        if player in self._moves:
            raise ProtocolError(
                ALREADY_MOVED,
                f"you already played in round {self.round}; wait for the "
                "result",
            )
        self._moves[player] = move
        self.context.send({"type": "moved", "player": player})
        self._resolve_if_complete()

    def player_left(self, player: str) -> None:
        if self.phase is not Phase.MOVING:
            return
        self._moves.pop(player, None)
        present = self.context.present()
        if len(present) < 2:
            self._finish(PLAYER_LEFT, present)
        else:
            self._resolve_if_complete()

    def stop(self, reason: str) -> None:
        if self.phase is not Phase.OVER:
            self._finish(reason, ())

    def _next_round(self) -> None:
        self.phase = Phase.MOVING
        self.round += 1
        self._moves = {}
        timeout = self.context.settings.move_timeout
        self.context.send(
            {"type": "round", "round": self.round, "timeout": float(timeout)}
        )
        hurry = self.context.settings.hurry
        self._ends_at = self.context.clock.seconds() + timeout
        # One timer at a time: the warning's, then the deadline's (a round
        # that ends early, as most do, costs one timer, not two).
        if 0 < hurry < timeout:
            self._deadline = self.context.clock.callLater(timeout - hurry, self._warn)
        else:
            self._deadline = self.context.clock.callLater(timeout, self._time_up)

    def _warn(self) -> None:
        """
        C{hurry} seconds are left: tell each player who has not moved, then
        wait for the deadline.
        """
        remaining = float(self.context.settings.hurry)
        # The deadline stays where the round put it, however late this ran.
        left = max(0.0, self._ends_at - self.context.clock.seconds())
        self._deadline = self.context.clock.callLater(left, self._time_up)
        for player in self.context.present():
            if player not in self._moves:
                self.context.send_to(
                    player, {"type": "hurry", "round": self.round, "remaining": remaining}
                )

    def _time_up(self) -> None:
        self._deadline = None
        self._resolve()

    def _resolve_if_complete(self) -> None:
        if all(p in self._moves for p in self.context.present()):
            self._resolve()

    def _resolve(self) -> None:
        self._cancel_deadline()
        moves = {p: self._moves.get(p) for p in self.context.players}
        winners = judge(moves)
        for winner in winners:
            self.scores[winner] += 1
        self.context.send(
            {
                "type": "result",
                "round": self.round,
                "moves": moves,
                "winners": list(winners),
                "timed_out": [p for p, move in moves.items() if move is None],
            }
        )
        if self.round >= self.context.settings.rounds:
            self._finish(
                COMPLETED, game_winners(self.scores, self.context.present())
            )
        else:
            self._next_round()

    def _finish(self, reason: str, winners: Sequence[str]) -> None:
        self._cancel_deadline()
        self.phase = Phase.OVER
        self.context.end(GameOver(reason, dict(self.scores), tuple(winners)))

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


@implementer(IBot)
@attrs.define
class RockPaperScissorsBot:
    """
    A computer player: a random legal move at a random moment of each
    round's first half, so it never times out.
    """

    context: IGameContext
    player: str
    random: random.Random = attrs.field(factory=lambda: random.Random(secrets.randbits(64)))

    def observe(self, payload: Mapping[str, Any]) -> None:
        if payload.get("type") == "round":
            delay = self.random.uniform(0.05, 0.5) * float(payload["timeout"])
            self.context.clock.callLater(delay, self._move, payload["round"])

    def _move(self, number: int) -> None:
        self.context.act(
            self.player, {"type": "move", "move": self.random.choice(SHAPES)}
        )


RockPaperScissors.bot = RockPaperScissorsBot  # type: ignore[attr-defined]

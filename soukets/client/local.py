"""
C{--local}: the game with no server at all.  A soukets server runs in the
client's own process (the very same sessions, lobbies and rules as the
daemon), with a computer player as the opponent.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable, Sequence

import attrs
from twisted.internet.interfaces import IReactorTime

from soukets.client.app import ClientApp, frames_of
from soukets.games.rps import BEATS, SHAPES
from soukets.outbox import next_turn
from soukets.server import Server, ServerSettings
from soukets.session import Session

BOT_NAME = "computer"
BEATEN_BY = {loser: winner for winner, loser in BEATS.items()}


def random_move(history: Sequence[str], rng: random.Random) -> str:
    """
    Any shape, at random.
    """
    return rng.choice(SHAPES)


def frequency_move(history: Sequence[str], rng: random.Random) -> str:
    """
    The shape that beats the opponent's most frequent one (at random while
    there is no history, or on a tie).
    """
    counts = Counter(history)
    if not counts:
        return rng.choice(SHAPES)
    most = max(counts.values())
    favourite = rng.choice(sorted(s for s, n in counts.items() if n == most))
    return BEATEN_BY[favourite]


STRATEGIES: dict[str, Callable[[Sequence[str], random.Random], str]] = {
    "random": random_move,
    "frequency": frequency_move,
}


@attrs.define
class Bot:
    """
    A computer player: a session on the in-process server that plays each
    round after a short, human-looking pause, learns its opponents' moves,
    and queues again after each game.
    """

    server: Server
    clock: IReactorTime
    strategy: Callable[[Sequence[str], random.Random], str]
    rng: random.Random = attrs.field(factory=random.Random)
    history: list[str] = attrs.field(factory=list)
    session: Session = attrs.field(init=False)
    _lobby: str | None = None

    def __attrs_post_init__(self) -> None:
        self.session = self.server.connect(next_turn(self.clock, self._read), lambda: None)
        self.session.name = BOT_NAME
        self.session.start()

    def _send(self, line: str) -> None:
        self.session.data_received(line.encode("utf-8") + b"\n")

    def _read(self, data: bytes) -> None:
        for channel, body in frames_of(data):
            kind = body.get("type")
            if kind == "matched":
                self._lobby = body["channel"]
            elif kind == "round" and channel == self._lobby:
                pause = min(self.rng.uniform(0.5, 2.0), body["timeout"] / 2)
                self.clock.callLater(pause, self._move, channel)
            elif kind == "result":
                me = self.session.client_id
                self.history.extend(
                    move for player, move in body["moves"].items() if player != me and move
                )
            elif kind == "closed" and channel == self._lobby:
                self._lobby = None
                self._send(';{"type":"queue"}')

    def _move(self, channel: str) -> None:
        if channel == self._lobby:
            shape = self.strategy(self.history, self.rng)
            self._send(channel + ';{"type":"move","move":"%s"}' % shape)


def play_locally(
    app: ClientApp,
    clock: IReactorTime,
    settings: ServerSettings,
    strategy: str = "frequency",
    rng: random.Random | None = None,
) -> Server:
    """
    Connect C{app} to a new in-process server where a L{Bot} is waiting.
    Frames cross in both directions on the next reactor turn, as over a
    network.
    """
    server = Server(settings, clock)
    Bot(server, clock, STRATEGIES[strategy], rng or random.Random())

    def to_app(data: bytes) -> None:
        for line in data.splitlines():
            app.line_received(line)

    session = server.connect(next_turn(clock, to_app), lambda: None)

    def to_server(data: bytes) -> None:
        clock.callLater(0, session.data_received, data)

    session.start()
    app.attach(to_server, session.connection_lost)
    return server


def local_settings(move_timeout: float, rounds: int) -> ServerSettings:
    return ServerSettings(lobby_size=2, move_timeout=move_timeout, rounds=rounds)


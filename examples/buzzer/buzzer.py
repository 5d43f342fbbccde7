"""
A third-party soukets game, registered without touching soukets: the first
player to send C{{"type":"buzz"}} on the lobby channel wins.

Register it in your own package's setup.cfg::

    [options.entry_points]
    soukets.games =
        buzzer = buzzer:Buzzer

then run C{twistd -n soukets --game buzzer}.
"""

import random

import attrs
from zope.interface import implementer

from soukets.frames import UNKNOWN_TYPE, ProtocolError
from soukets.games.base import PLAYER_LEFT, GameOver, IBot, IGame, IGameContext


@implementer(IGame)
@attrs.define
class Buzzer:
    """
    First to buzz wins; a game of one frame.
    """

    context: IGameContext

    def start(self) -> None:
        self.context.send({"type": "ready"})

    def received(self, player, frame) -> None:
        if frame.type != "buzz":
            raise ProtocolError(UNKNOWN_TYPE, 'send {"type":"buzz"} to win')
        scores = {p: int(p == player) for p in self.context.players}
        self.context.end(GameOver("completed", scores, [player]))

    def player_left(self, player) -> None:
        if len(self.context.present()) < 2:
            self.context.end(GameOver(PLAYER_LEFT, {}, self.context.present()))

    def stop(self, reason) -> None:
        self.context.end(GameOver(reason))


@implementer(IBot)
@attrs.define
class BuzzerBot:
    """
    A computer player for a lonely queue: it buzzes a random 1 to 3 seconds
    after the game is ready (through the lobby, like any player).
    """

    context: IGameContext
    player: str

    def observe(self, payload) -> None:
        if payload.get("type") == "ready":
            delay = random.uniform(1.0, 3.0)
            self.context.clock.callLater(delay, self.context.act, self.player, {"type": "buzz"})


# A game supplies its bots through its factory's "bot" attribute.
Buzzer.bot = BuzzerBot

"""
Chat: a lobby with no game.  The players publish to each other on the lobby
channel until fewer than two of them are left.
"""

from __future__ import annotations

import attrs
from zope.interface import implementer

from soukets.frames import UNKNOWN_TYPE, Frame, ProtocolError, quote
from soukets.games.base import GameOver, IGame, IGameContext


@implementer(IGame)
@attrs.define
class Chat:
    """
    A lobby channel where players only talk.  It closes when fewer than two
    players remain, or with C{game_over} when the server shuts down.
    """

    context: IGameContext

    def start(self) -> None:
        pass

    def received(self, player: str, frame: Frame) -> None:
        raise ProtocolError(
            UNKNOWN_TYPE,
            f"unknown frame type {quote(frame.type)}: this lobby runs no game; "
            f'talk with {self.context.channel};{{"type":"publish","data":"hi"}}',
        )

    def player_left(self, player: str) -> None:
        if len(self.context.present()) < 2:
            self.context.end(None)

    def stop(self, reason: str) -> None:
        self.context.end(GameOver(reason))

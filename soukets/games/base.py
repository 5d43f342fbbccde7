"""
What a game is, and what it can do: the interface between soukets' lobbies
and the games that run in them.

A game is made by a factory (registered under the ``soukets.games`` entry
point group) called with an L{IGameContext}; the factory returns an
L{IGame}.  The lobby tells the game about its players' frames and
departures; the game talks to its players only through the context.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import attrs
from zope.interface import Attribute, Interface

from soukets.frames import Frame


@attrs.frozen
class GameSettings:
    """
    The server's options that a game may use.
    """

    move_timeout: float = 10.0
    rounds: int = 1
    hurry: float = 3.0
    """Seconds before a round's deadline to warn who has not moved (0: never)."""


@attrs.frozen
class GameOver:
    """
    How a game ended: sent to its players as a C{game_over} frame.
    """

    reason: str
    scores: Mapping[str, int] = attrs.field(factory=dict)
    winners: Sequence[str] = ()

    def to_payload(self) -> dict[str, Any]:
        return {
            "type": "game_over",
            "reason": self.reason,
            "scores": dict(self.scores),
            "winners": list(self.winners),
        }


# Reasons a game ends.
COMPLETED = "completed"
PLAYER_LEFT = "player_left"
SHUTDOWN = "shutdown"


class IGameContext(Interface):
    """
    What a game can see and do: its lobby, as the game sees it.
    """

    channel = Attribute("The lobby channel's name (str).")
    players = Attribute(
        "The players' client ids, in the order they were matched "
        "(tuple of str); it never changes."
    )
    settings = Attribute("The server's L{GameSettings}.")
    clock = Attribute(
        "An L{twisted.internet.interfaces.IReactorTime} for the game's "
        "timers."
    )

    def present() -> tuple[str, ...]:
        """
        The players still in the game, in match order.
        """

    def send(payload: Mapping[str, Any]) -> None:
        """
        Send a frame with this JSON object to every player on the lobby
        channel (and to its watchers, and the lobby's bots).
        """

    def send_to(player: str, payload: Mapping[str, Any]) -> None:
        """
        Send a frame with this JSON object to one player alone, on the lobby
        channel (if it is connected; watchers never see it).
        """

    def act(player: str, payload: Mapping[str, Any]) -> None:
        """
        For a bot: play this frame as C{player}, one of the lobby's bots;
        the game receives it as it would from a client.
        """

    def end(over: GameOver | None) -> None:
        """
        End the game: send C{over} as C{game_over} (unless it is L{None}),
        then close the lobby channel for everyone with C{closed}.  The game
        is told nothing more after this.
        """


class IBot(Interface):
    """
    A bot that plays a seat of a game.  A game supplies bots through its
    factory's C{bot} attribute: a callable taking the L{IGameContext} and
    the bot's client id, and returning an L{IBot}.  A bot acts through
    L{IGameContext.act}, from timers on L{IGameContext.clock}, never from
    inside L{observe}.
    """

    def observe(payload: Mapping[str, Any]) -> None:
        """
        The lobby sent this frame to everyone.
        """


class IGame(Interface):
    """
    A game running in one lobby.  Each method is called by the lobby; none
    may block.  Raising L{soukets.frames.ProtocolError} from L{received}
    sends that error back to the player, on the lobby channel.
    """

    def start() -> None:
        """
        The players are matched and subscribed: begin.
        """

    def received(player: str, frame: Frame) -> None:
        """
        C{player} sent C{frame} on the lobby channel (any type but
        C{subscribe}, C{unsubscribe} and C{publish}, which the hub handles).
        """

    def player_left(player: str) -> None:
        """
        C{player} went away (disconnected, unsubscribed from the lobby
        channel, or was cut off); every player still present has been sent
        C{left}.  It is no longer in L{IGameContext.present}.
        """

    def stop(reason: str) -> None:
        """
        The server is going away: end the game now, through
        L{IGameContext.end}, with C{reason}.
        """

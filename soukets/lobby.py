"""
The main lobby and the lobbies it forms: the matchmaking queue, the lobby
channels, and the game running in each.
"""

from __future__ import annotations

import enum
import secrets
from typing import Any, Mapping, Protocol

import attrs
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from soukets.frames import (
    ALREADY_QUEUED,
    CONTROL,
    IN_GAME,
    INTERNAL_ERROR,
    NOT_IN_GAME,
    UNKNOWN_TYPE,
    Frame,
    ProtocolError,
    encode_frame,
    quote,
    with_id,
)
from soukets.games import GameFactory
from soukets.games.base import SHUTDOWN, GameOver, GameSettings, IGame, IGameContext
from soukets.hub import LOBBY_PREFIX, ChannelHub
from soukets.matchmaking import MatchQueue
from soukets.tally import Tally

LOBBY_ID_BYTES = 16
"""Lobby channel ids carry this many random bytes (128 bits)."""


class Player(Protocol):
    """
    What the lobby needs of a client: its id, its display name, whether its
    connection is still there, and a way to send it frames.
    """

    client_id: str
    name: str

    @property
    def connected(self) -> bool:
        ...

    def send(self, data: bytes) -> None:
        ...


def new_lobby_id() -> str:
    """
    A fresh, unguessable lobby channel name, in the form reserved for
    lobbies (C{lobby:} and 128 random bits).
    """
    return LOBBY_PREFIX + secrets.token_urlsafe(LOBBY_ID_BYTES)


class LobbyState(enum.Enum):
    """
    Whether a lobby's game is still going.
    """

    RUNNING = "running"
    CLOSED = "closed"


@implementer(IReactorTime)
@attrs.frozen
class _SteppedClock:
    """
    The clock a game is given: timers it sets run as steps of its lobby.
    """

    clock: IReactorTime
    lobby: Lobby

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        return self.clock.callLater(delay, self.lobby.step, f, *args, **kwargs)

    def getDelayedCalls(self) -> Any:
        return self.clock.getDelayedCalls()


@implementer(IGameContext)
@attrs.define(eq=False)
class Lobby:
    """
    One lobby: its channel, its players and its game.  It is the game's
    L{IGameContext}.

    The game is only ever called in a L{step}: a player leaving while the
    game is busy (its connection dropped as a frame was sent to it, say) is
    told to the game once the step is over, never in the middle of it.
    """

    channel: str
    players: tuple[str, ...]
    settings: GameSettings
    _clock: IReactorTime
    _service: LobbyService
    _members: dict[str, Player]
    game: IGame | None = None
    state: LobbyState = LobbyState.RUNNING
    _depth: int = 0  # how many steps are running (steps may nest)
    _departures: list[Player] = attrs.field(factory=list)

    @property
    def clock(self) -> IReactorTime:
        return _SteppedClock(self._clock, self)

    def step(self, f: Any, *args: Any, **kwargs: Any) -> bool:
        """
        Run C{f}, a call into the game; then handle the departures that
        happened meanwhile.

        A L{ProtocolError} from the game goes to the caller.  Any other
        exception is a bug in the game: it is logged once, with the game's
        name, and the game ends (C{game_over}, reason C{internal_error}),
        since its state can no longer be trusted.

        @return: whether C{f} returned normally.
        """
        self._depth += 1
        ok = False
        try:
            f(*args, **kwargs)
            ok = True
        except ProtocolError:
            raise
        except Exception:
            self._service._crashed(self)
        finally:
            self._depth -= 1
        while self._depth == 0 and self._departures:
            self._service._depart(self, self._departures.pop(0))
        return ok

    def present(self) -> tuple[str, ...]:
        return tuple(p for p in self.players if p in self._members)

    def send(self, payload: Mapping[str, Any]) -> None:
        if self.state is LobbyState.RUNNING:
            data = encode_frame(self.channel, payload)
            for member in tuple(self._members.values()):
                member.send(data)

    def end(self, over: GameOver | None) -> None:
        self._service._end(self, over)


class LobbyService(Service):
    """
    The main lobby: players queue here and, when C{lobby_size} of them are
    waiting, are taken in arrival order into a new lobby channel running a
    new game.  Stopping the service ends every running game.
    """

    name = "lobby"
    log = Logger()

    def __init__(
        self,
        hub: ChannelHub,
        game_name: str,
        game_factory: GameFactory,
        lobby_size: int,
        settings: GameSettings,
        clock: IReactorTime,
        tally: Tally | None = None,
    ) -> None:
        self._hub = hub
        self._tally = tally or Tally()
        self.game_name = game_name
        self._game_factory = game_factory
        self._queue: MatchQueue[Player] = MatchQueue(lobby_size)
        self.settings = settings
        self._clock = clock
        self.lobbies: dict[str, Lobby] = {}
        self._lobby_of: dict[Player, Lobby] = {}

    @property
    def lobby_size(self) -> int:
        return self._queue.size

    @property
    def waiting(self) -> int:
        """
        How many players are in the queue.
        """
        return len(self._queue)

    def lobby_of(self, player: Player) -> Lobby | None:
        """
        The running lobby C{player} plays in, if any.
        """
        return self._lobby_of.get(player)

    def enqueue(self, player: Player, frame_id: str | int | None = None) -> None:
        """
        Put C{player} in the queue and send it C{queued}; form a lobby if
        enough players are waiting.

        @raise ProtocolError: C{already_queued} or C{in_game}.
        """
        if player in self._lobby_of:
            raise ProtocolError(
                IN_GAME,
                "you are in a running game; you can queue again once it is over",
            )
        if player in self._queue:
            raise ProtocolError(
                ALREADY_QUEUED,
                'you are already waiting for a lobby; ;{"type":"unqueue"} '
                "leaves the queue",
            )
        # The reply is made before the queue changes: nothing that fails
        # may leave others taken off the queue with no lobby.
        waiting = min(len(self._queue) + 1, self.lobby_size)
        queued = encode_frame(
            CONTROL,
            with_id(
                {"type": "queued", "waiting": waiting, "lobby_size": self.lobby_size},
                frame_id,
            ),
        )
        group = self._queue.add(player)
        player.send(queued)
        if group:
            self._form(group)

    def dequeue(self, player: Player) -> None:
        """
        Take C{player} out of the queue, if it is there.
        """
        self._queue.remove(player)

    def receive(self, player: Player, frame: Frame) -> None:
        """
        Hand a game frame from C{player} to the game of its lobby.

        @raise ProtocolError: C{not_in_game} unless C{frame} is on the lobby
            channel of C{player}'s running game, or any error of the game.
        """
        lobby = self._lobby_of.get(player)
        if lobby is None or lobby.channel != frame.channel:
            if frame.type == "move":
                raise ProtocolError(
                    NOT_IN_GAME,
                    f"{frame.channel} is not the channel of a game you are "
                    "playing; moves go on the lobby channel named in "
                    '"matched"',
                )
            raise ProtocolError(
                UNKNOWN_TYPE,
                f"unknown frame type {quote(frame.type)} on a channel; use "
                "subscribe, unsubscribe or publish",
            )
        assert lobby.game is not None
        if not lobby.step(lobby.game.received, player.client_id, frame):
            raise ProtocolError(
                INTERNAL_ERROR,
                f"the {self.game_name} game failed on this frame and was "
                "ended (the server's log says why)",
            )

    def leave(self, player: Player) -> None:
        """
        C{player} is gone from the queue and from its game (it disconnected,
        left its lobby channel or was cut off).  The other players get
        C{left}, and the game is told.
        """
        self._queue.remove(player)
        lobby = self._lobby_of.get(player)
        if lobby is None:
            return
        if lobby._depth:
            lobby._departures.append(player)
        else:
            self._depart(lobby, player)

    def _depart(self, lobby: Lobby, player: Player) -> None:
        if self._lobby_of.pop(player, None) is not lobby:
            return  # the game ended meanwhile
        self._hub.ban(lobby.channel, player)
        del lobby._members[player.client_id]
        lobby.send({"type": "left", "player": player.client_id})
        assert lobby.game is not None
        lobby.step(lobby.game.player_left, player.client_id)

    def stopService(self) -> None:
        """
        End every running game (C{game_over}, reason C{shutdown}) and empty
        the queue.
        """
        super().stopService()
        for lobby in list(self.lobbies.values()):
            assert lobby.game is not None
            lobby.step(lobby.game.stop, SHUTDOWN)
            if lobby.state is LobbyState.RUNNING:
                self._end(lobby, GameOver(SHUTDOWN))
        self._queue = MatchQueue(self.lobby_size)

    def _form(self, group: tuple[Player, ...]) -> None:
        gone = [player for player in group if not player.connected]
        if gone:
            # A connection that closed before its lobby formed is never
            # matched; the others keep their places at the front.
            self._queue.restore([p for p in group if p.connected])
            return
        channel = new_lobby_id()
        while self._hub.get(channel) is not None:  # pragma: no cover
            channel = new_lobby_id()
        self._hub.open_lobby(channel, group)
        ids = tuple(player.client_id for player in group)
        lobby = Lobby(
            channel,
            ids,
            self.settings,
            self._clock,
            self,
            {player.client_id: player for player in group},
        )
        self.lobbies[channel] = lobby
        names = {player.client_id: player.name for player in group}
        for player in group:
            self._lobby_of[player] = lobby
            player.send(
                encode_frame(
                    CONTROL,
                    {
                        "type": "matched",
                        "channel": channel,
                        "players": list(ids),
                        "you": player.client_id,
                        "names": names,
                    },
                )
            )
        self.log.info(
            "lobby formed: {game} for {players}",
            game=self.game_name,
            players=" ".join(ids),
        )
        lobby.step(self._start_game, lobby)

    def _start_game(self, lobby: Lobby) -> None:
        lobby.game = self._game_factory(lobby)
        lobby.game.start()

    def _crashed(self, lobby: Lobby) -> None:
        self.log.failure(
            "the {game} game in lobby {channel} failed; it is ended",
            game=self.game_name,
            channel=lobby.channel,
        )
        self._end(lobby, GameOver(INTERNAL_ERROR))

    def _end(self, lobby: Lobby, over: GameOver | None) -> None:
        if lobby.state is LobbyState.CLOSED:
            return
        if over is not None:
            lobby.send(over.to_payload())
            self._tally.game_over(over.reason)
        lobby.send({"type": "closed"})
        lobby.state = LobbyState.CLOSED
        self._hub.close(lobby.channel)
        del self.lobbies[lobby.channel]
        for player in lobby._members.values():
            self._lobby_of.pop(player, None)
        if over is None:
            self.log.info("lobby closed: {players}", players=" ".join(lobby.players))
        else:
            self.log.info(
                "game over ({reason}): {game} {players}, scores {scores}, "
                "winners {winners}",
                reason=over.reason,
                game=self.game_name,
                players=" ".join(lobby.players),
                scores=dict(over.scores),
                winners=" ".join(over.winners) or "none",
            )

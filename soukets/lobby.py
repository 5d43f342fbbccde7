"""
The main lobby and the lobbies it forms: the matchmaking queue, the lobby
channels, the game running in each, and what every game gets without a line
of its own: seats held for a lost connection and taken back with a token,
spectators, and bots for a lonely queue.
"""

from __future__ import annotations

import enum
import itertools
import os
from binascii import b2a_base64
from typing import Any, Mapping, Protocol

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from soukets import logs
from soukets.frames import (
    ALREADY_QUEUED,
    BAD_TOKEN,
    CONTROL,
    FORBIDDEN,
    IN_GAME,
    INTERNAL_ERROR,
    NOT_IN_GAME,
    UNKNOWN_TYPE,
    Frame,
    ProtocolError,
    compact_json,
    encode_frame,
    quote,
    with_id,
)
from soukets.games import GameFactory
from soukets.games.base import SHUTDOWN, GameOver, GameSettings, IGame, IGameContext
from soukets.hub import LOBBY_PREFIX, ChannelHub
from soukets.matchmaking import MatchQueue
from soukets.tally import Tally
from soukets.transcript import Transcript

LOBBY_ID_BYTES = 16
"""Lobby channel ids carry this many random bytes (128 bits)."""

TOKEN_BYTES = 18
"""Resume tokens carry this many random bytes (144 bits)."""

MAX_GAMES_LISTED = 100


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


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _token_urlsafe(size: int) -> str:
    """
    C{secrets.token_urlsafe(size)}, the same bytes from the same source
    (C{os.urandom}), in a third of the calls: a game makes three.
    """
    return b2a_base64(os.urandom(size), newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def new_lobby_id(node: str = "") -> str:
    """
    A fresh, unguessable lobby channel name, in the form reserved for
    lobbies (C{lobby:}, the id of the node that runs it with a dot, if the
    server has several, and 128 random bits).
    """
    return LOBBY_PREFIX + node + _token_urlsafe(LOBBY_ID_BYTES)


def new_token() -> str:
    """
    A fresh, unguessable resume token.
    """
    return _token_urlsafe(TOKEN_BYTES)


@attrs.define(eq=False)
class HeldSeat:
    """
    The seat of a player whose connection is gone while its game runs: kept
    (the player still counts as present, and times out as usual) until it
    is taken back with a resume token or the hold runs out.  It is sent
    nothing: what the player misses is replayed from the lobby's
    transcript.
    """

    client_id: str
    name: str
    away_since: int
    """The lobby transcript's mark when the connection was lost."""
    expiry: IDelayedCall | None = None
    connected = False

    def send(self, data: bytes) -> None:
        pass


@attrs.define(eq=False)
class BotSeat:
    """
    A seat played by the game's own bot: it sees every frame sent to all
    (as a mapping, not bytes) and plays through the lobby.
    """

    client_id: str
    name: str
    bot: Any = None
    connected = True

    def send(self, data: bytes) -> None:
        pass


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
    One lobby: its channel, its players (and the seats they sit in), its
    watchers, its game, and the transcript of what it sent.  It is the
    game's L{IGameContext}.

    The game is only ever called in a L{step}: a player leaving while the
    game is busy (its connection dropped as a frame was sent to it, say) is
    told to the game once the step is over, never in the middle of it.
    """

    channel: str
    players: tuple[str, ...]
    settings: GameSettings
    _clock: IReactorTime
    _service: LobbyService
    _members: dict[str, Any]  # client id -> session, HeldSeat or BotSeat
    names: dict[str, str] = attrs.field(factory=dict)
    bots: tuple[str, ...] = ()
    bot_seats: tuple[BotSeat, ...] = ()
    game: IGame | None = None
    state: LobbyState = LobbyState.RUNNING
    watchers: dict[Any, None] = attrs.field(factory=dict)
    transcript: Transcript = attrs.field(factory=Transcript)
    tokens: dict[str, str] = attrs.field(factory=dict)  # client id -> token
    started: float = 0.0
    _depth: int = 0  # how many steps are running (steps may nest)
    _departures: list[Any] = attrs.field(factory=list)
    _stepped: _SteppedClock | None = attrs.field(default=None, init=False)

    @property
    def clock(self) -> IReactorTime:
        stepped = self._stepped
        if stepped is None:
            stepped = self._stepped = _SteppedClock(self._clock, self)
        return stepped

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
        members = self._members
        return tuple([p for p in self.players if p in members])

    def send(self, payload: Mapping[str, Any], exclude: Any = None) -> None:
        if self.state is not LobbyState.RUNNING:
            return
        channel = self._service._hub.get(self.channel)
        if channel is not None:
            channel.send(encode_frame(self.channel, payload), exclude)
        self.transcript.add(self._clock.seconds(), payload)
        for seat in self.bot_seats:
            if seat.bot is not None:
                seat.bot.observe(payload)

    def send_to(self, player: str, payload: Mapping[str, Any]) -> None:
        if self.state is not LobbyState.RUNNING:
            return
        seat = self._members.get(player)
        if seat is not None and seat.connected and seat not in self.bot_seats:
            seat.send(encode_frame(self.channel, payload))

    def act(self, player: str, payload: Mapping[str, Any]) -> None:
        """
        A bot of this lobby plays C{payload} as C{player}: the game gets it
        as it would get the frame from a client.
        """
        if self.state is not LobbyState.RUNNING or self.game is None:
            return
        frame = Frame(self.channel, str(payload.get("type", "")), dict(payload))
        try:
            self.step(self.game.received, player, frame)
        except ProtocolError as error:
            self._service.log.warn(
                "a bot of {game} made a bad frame ({code}): {message}",
                game=self._service.game_name, code=error.code, message=error.message,
            )

    def end(self, over: GameOver | None) -> None:
        self._service._end(self, over)


class LobbyService(Service):
    """
    The main lobby: players queue here and, when C{lobby_size} of them are
    waiting, are taken in arrival order into a new lobby channel running a
    new game.  Stopping the service ends every running game.

    @param seat_hold: seconds a seat is held for a player whose connection
        is lost mid-game (0: it leaves at once).
    @param bot_after: seconds a lone player waits before bots fill its
        lobby (0: never).
    @param spectators: whether anyone may watch a running game.
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
        seat_hold: float = 0.0,
        bot_after: float = 0.0,
        spectators: bool = True,
    ) -> None:
        self._hub = hub
        self._tally = tally or Tally()
        self.game_name = game_name
        self._game_factory = game_factory
        self._queue: MatchQueue[Player] = MatchQueue(lobby_size)
        self.settings = settings
        self._clock = clock
        self.seat_hold = seat_hold
        self.bot_after = bot_after
        self.spectators = spectators
        self.lobbies: dict[str, Lobby] = {}
        self._lobby_of: dict[Any, Lobby] = {}
        self._watching: dict[Any, Lobby] = {}
        self._tokens: dict[str, tuple[Lobby, str]] = {}  # token -> lobby, client id
        self._bot_timers: dict[Any, IDelayedCall] = {}
        self._bot_ids = itertools.count(1)
        self.cluster: Any = None
        """
        The engine, when this server is one node of several: it keeps the
        queue (in Redis) and is told who sits and watches where (see
        L{soukets.engines.redis.RedisEngine}).  L{None} for one process.
        """
        self.id_prefix = ""
        """What lobby ids and resume tokens start with (a node's id)."""

    @property
    def lobby_size(self) -> int:
        return self._queue.size

    @property
    def waiting(self) -> int:
        """
        How many players are in the queue (on this node).
        """
        if self.cluster is not None:
            return self.cluster.waiting
        return len(self._queue)

    def lobby_of(self, player: Player) -> Lobby | None:
        """
        The running lobby C{player} plays in, if any.
        """
        return self._lobby_of.get(player)

    # The queue

    def enqueue(self, player: Player, frame_id: str | int | None = None) -> Deferred[None] | None:
        """
        Put C{player} in the queue and send it C{queued}; form a lobby if
        enough players are waiting.

        @return: L{None} when that is done; a L{Deferred} for when it is, if
            the queue is the cluster's.
        @raise ProtocolError: C{already_queued} or C{in_game}.
        """
        cluster = self.cluster
        if player in self._lobby_of or (cluster is not None and cluster.plays(player)):
            raise ProtocolError(
                IN_GAME,
                "you are in a running game; you can queue again once it is over",
            )
        if player in self._queue or (cluster is not None and cluster.queued(player)):
            raise ProtocolError(
                ALREADY_QUEUED,
                'you are already waiting for a lobby; ;{"type":"unqueue"} '
                "leaves the queue",
            )
        if cluster is not None:
            self._set_bot_timer(player)
            return cluster.enqueue(player, frame_id)
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
            self.form(group)
        else:
            self._set_bot_timer(player)
        return None

    def _set_bot_timer(self, player: Player) -> None:
        if self.bot_after > 0 and getattr(self._game_factory, "bot", None) is not None:
            self._bot_timers[player] = self._clock.callLater(
                self.bot_after, self._fill_with_bots, player
            )

    def dequeue(self, player: Player) -> None:
        """
        Take C{player} out of the queue, if it is there.
        """
        if self.cluster is not None:
            self.cluster.dequeue(player)
        else:
            self._queue.remove(player)
        self._cancel_bot_timer(player)

    def renamed(self, player: Player) -> None:
        """
        C{player} changed its name: a lobby formed from now on shows it.
        """
        if self.cluster is not None:
            self.cluster.renamed(player)

    def _cancel_bot_timer(self, player: Any) -> None:
        timer = self._bot_timers.pop(player, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _fill_with_bots(self, player: Player) -> None:
        """
        C{player} waited C{bot_after} seconds: the players waiting (it among
        them) are matched now, bots taking the seats left.
        """
        self._bot_timers.pop(player, None)
        if self.cluster is not None:
            self.cluster.take_for_bots(player).addCallback(self._form_with_bots)
            return
        if player not in self._queue:
            return
        self._form_with_bots(self._queue.take(self.lobby_size))

    def _form_with_bots(self, taken: list[Player]) -> None:
        group = tuple(taken)
        for member in group:
            self._cancel_bot_timer(member)
        live = tuple(p for p in group if p.connected)
        if not live:
            return
        bots = tuple(
            BotSeat(f"bot-{next(self._bot_ids)}", "bot")
            for _ in range(self.lobby_size - len(live))
        )
        self.form(live, bots)

    # Departures

    def leave(self, player: Player) -> None:
        """
        C{player} is gone from the queue and from its game, for good (it
        left its lobby channel, or its seat's hold ran out).  The other
        players get C{left}, and the game is told.
        """
        self.dequeue(player)
        self.unwatch(player)
        lobby = self._lobby_of.get(player)
        if lobby is None:
            return
        if lobby._depth:
            lobby._departures.append(player)
        else:
            self._depart(lobby, player)

    def connection_lost(self, player: Player) -> None:
        """
        C{player}'s connection is gone.  In a running game with a seat hold,
        its seat is kept for it (the others get C{away}); otherwise it
        leaves.
        """
        lobby = self._lobby_of.get(player)
        if lobby is None or self.seat_hold <= 0 or lobby.state is not LobbyState.RUNNING:
            self.leave(player)
            return
        self.dequeue(player)
        self.unwatch(player)
        seat = HeldSeat(player.client_id, player.name, lobby.transcript.mark())
        del self._lobby_of[player]
        self._lobby_of[seat] = lobby
        lobby._members[player.client_id] = seat
        self._hub.replace_player(lobby.channel, player, seat)
        seat.expiry = self._clock.callLater(self.seat_hold, self.leave, seat)
        lobby.send({"type": "away", "player": seat.client_id, "hold": float(self.seat_hold)})

    def _depart(self, lobby: Lobby, player: Any) -> None:
        if self._lobby_of.pop(player, None) is not lobby:
            return  # the game ended meanwhile
        if self.cluster is not None:
            self.cluster.unseated(player, lobby)
        self._void_token(lobby, player.client_id)
        self._hub.ban(lobby.channel, player)
        del lobby._members[player.client_id]
        lobby.send({"type": "left", "player": player.client_id})
        # (Sending "left" may have cost another player its connection,
        # and the game its last opponent: then it is over already.)
        if lobby.state is LobbyState.RUNNING:
            assert lobby.game is not None
            lobby.step(lobby.game.player_left, player.client_id)

    # Seats taken back

    def resume(self, player: Player, token: Any) -> tuple[Lobby, str, Any]:
        """
        The first half of taking a seat back with C{token}: check it, and
        use it up.

        @return: the lobby, the seat's client id, and who sits in it now (a
            L{HeldSeat}, or the old connection if it is still open).
        @raise ProtocolError: C{bad_token} (unknown, used, or for a game
            that is over), C{in_game} if C{player} plays another game.
        """
        found = self._tokens.get(token) if isinstance(token, str) else None
        if found is None or found[0].state is not LobbyState.RUNNING:
            raise ProtocolError(
                BAD_TOKEN,
                "this resume token is unknown, already used, or for a game "
                "that is over; queue for a new game",
            )
        lobby, client_id = found
        if player in self._lobby_of:
            raise ProtocolError(
                IN_GAME, "you are in a running game; finish it before resuming another"
            )
        del self._tokens[token]
        lobby.tokens.pop(client_id, None)
        return lobby, client_id, lobby._members[client_id]

    def seat(self, player: Player, lobby: Lobby, previous: Any) -> tuple[str, list[dict[str, Any]]]:
        """
        The second half: C{player} (now bearing the seat's client id) sits
        in the seat C{previous} held.  The others get C{back}.

        @return: the next resume token, and the frames that catch the
            player up.
        """
        self.dequeue(player)
        self.unwatch(player)
        since = None
        if isinstance(previous, HeldSeat):
            if previous.expiry is not None and previous.expiry.active():
                previous.expiry.cancel()
            since = previous.away_since
        self._lobby_of.pop(previous, None)
        self._lobby_of[player] = lobby
        lobby._members[player.client_id] = player
        if self.cluster is not None:
            self.cluster.seated(player, lobby)
        self._hub.replace_player(lobby.channel, previous, player)
        token = self._issue_token(lobby, player.client_id)
        catch_up = lobby.transcript.catch_up(self._clock.seconds(), since)
        lobby.send({"type": "back", "player": player.client_id}, exclude=player)
        return token, catch_up

    def _issue_token(self, lobby: Lobby, client_id: str) -> str:
        token = self.id_prefix + new_token()
        self._tokens[token] = (lobby, client_id)
        lobby.tokens[client_id] = token
        return token

    def _void_token(self, lobby: Lobby, client_id: str) -> None:
        token = lobby.tokens.pop(client_id, None)
        if token is not None:
            self._tokens.pop(token, None)

    # Spectators

    def games(self) -> Deferred[list[dict[str, Any]]]:
        """
        The running games (of every node), newest first, at most
        L{MAX_GAMES_LISTED}.
        """
        self._check_spectators()
        games = self.cluster.games() if self.cluster is not None else succeed(self.local_games())
        return games.addCallback(
            lambda games: [
                {k: v for k, v in game.items() if k != "started"}
                for game in games[:MAX_GAMES_LISTED]
            ]
        )

    def local_games(self, *only: Lobby) -> list[dict[str, Any]]:
        """
        The games running here (or just C{only}), newest first, with when
        they started.
        """
        return [
            {
                "channel": lobby.channel,
                "players": list(lobby.players),
                "names": dict(lobby.names),
                "round": lobby.transcript.round_number,
                "watchers": len(lobby.watchers),
                "started": lobby.started,
            }
            for lobby in (only or reversed(list(self.lobbies.values())))
        ]

    def watch(self, watcher: Any, channel: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """
        C{watcher} watches the game on C{channel}.

        @return: the C{watching} answer, and the frames of the round under
            way (for a watcher who comes late).
        @raise ProtocolError: C{forbidden} (no such game, one's own, or
            spectators off).
        """
        self._check_spectators()
        lobby = self.lobbies.get(channel)
        if lobby is None or self._lobby_of.get(watcher) is lobby:
            raise ProtocolError(
                FORBIDDEN, f"{channel} is not a game you can watch; ;{{\"type\":\"games\"}} lists them"
            )
        self.unwatch(watcher)
        self._hub.watch(channel, watcher)
        lobby.watchers[watcher] = None
        self._watching[watcher] = lobby
        if self.cluster is not None:
            self.cluster.watched(watcher, lobby)
        answer = {
            "type": "watching",
            "players": list(lobby.players),
            "round": lobby.transcript.round_number,
        }
        return answer, lobby.transcript.catch_up(self._clock.seconds(), None)

    def unwatch(self, watcher: Any) -> bool:
        """
        C{watcher} stops watching (if it was); return whether it was.
        """
        lobby = self._watching.pop(watcher, None)
        if lobby is None:
            return False
        lobby.watchers.pop(watcher, None)
        if self.cluster is not None:
            self.cluster.unwatched(watcher, lobby)
        channel = self._hub.get(lobby.channel)
        if channel is not None and watcher in channel.members:
            self._hub.unsubscribe(lobby.channel, watcher)
        return True

    def watching(self, watcher: Any) -> bool:
        """
        Whether C{watcher} watches a game.
        """
        return watcher in self._watching

    def watches(self, watcher: Any, channel: str) -> bool:
        lobby = self._watching.get(watcher)
        return lobby is not None and lobby.channel == channel

    def _check_spectators(self) -> None:
        if not self.spectators:
            raise ProtocolError(FORBIDDEN, "this server runs with spectators off")

    # Game frames

    def receive(self, player: Player, frame: Frame) -> None:
        """
        Hand a game frame from C{player} to the game of its lobby.

        @raise ProtocolError: C{not_in_game} unless C{frame} is on the lobby
            channel of C{player}'s running game, C{forbidden} from a
            watcher, or any error of the game.
        """
        lobby = self._lobby_of.get(player)
        if lobby is None or lobby.channel != frame.channel:
            if self.watches(player, frame.channel):
                raise ProtocolError(
                    FORBIDDEN, "you are watching this game: watchers do not play"
                )
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

    # Life and death of lobbies

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
        for player in list(self._bot_timers):
            self._cancel_bot_timer(player)
        self._queue = MatchQueue(self.lobby_size)

    def form(self, group: tuple[Player, ...], bots: tuple[BotSeat, ...] = ()) -> None:
        """
        Open a lobby for C{group} (taken off the queue, in order), with
        C{bots} in the seats left, and start its game.
        """
        gone = [player for player in group if not player.connected]
        if gone:
            # A connection that closed before its lobby formed is never
            # matched; the others keep their places at the front.
            self._queue.restore([p for p in group if p.connected])
            return
        for player in group:
            self._cancel_bot_timer(player)
        channel = new_lobby_id(self.id_prefix)
        while self._hub.get(channel) is not None:  # pragma: no cover
            channel = new_lobby_id(self.id_prefix)
        self._hub.open_lobby(channel, group)
        seats = (*group, *bots)
        ids = tuple(seat.client_id for seat in seats)
        lobby = Lobby(
            channel,
            ids,
            self.settings,
            self._clock,
            self,
            {seat.client_id: seat for seat in seats},
            names={seat.client_id: seat.name for seat in seats},
            bots=tuple(bot.client_id for bot in bots),
            bot_seats=bots,
            started=self._clock.seconds(),
        )
        self.lobbies[channel] = lobby
        # Each player's "matched" differs only by "you" and "resume" (ids
        # and tokens the server made, which need no escaping): what they
        # share is encoded once, for the lobby.
        shared = compact_json({"players": list(ids), "names": lobby.names})[1:-1]
        players_json, _, names_json = shared.partition(',"names":')
        bots_json = f',"bots":{compact_json(list(lobby.bots))}' if bots else ""
        for player in group:
            self._lobby_of[player] = lobby
            if self.cluster is not None:
                self.cluster.seated(player, lobby)
            token = self._issue_token(lobby, player.client_id)
            player.send(
                f'{CONTROL};{{"type":"matched","channel":"{channel}",{players_json},'
                f'"you":"{player.client_id}","names":{names_json},'
                f'"resume":"{token}"{bots_json}}}\n'.encode()
            )
        # (debug: the game over line at info is the operator's record of
        # every game, with its players; this one would double the cost.)
        if logs.enabled(LogLevel.debug):
            self.log.debug(
                "lobby formed: {game} for {players}",
                game=self.game_name,
                players=" ".join(ids),
            )
        lobby.step(self._start_game, lobby, bots)

    def _start_game(self, lobby: Lobby, bots: tuple[BotSeat, ...]) -> None:
        lobby.game = self._game_factory(lobby)
        make_bot = getattr(self._game_factory, "bot", None)
        for seat in bots:
            seat.bot = make_bot(lobby, seat.client_id)
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
        for client_id in list(lobby.tokens):
            self._void_token(lobby, client_id)
        if self.cluster is not None:
            self.cluster.unlisted(lobby)
        for seat in lobby._members.values():
            self._lobby_of.pop(seat, None)
            if self.cluster is not None:
                self.cluster.unseated(seat, lobby)
            if isinstance(seat, HeldSeat) and seat.expiry is not None and seat.expiry.active():
                seat.expiry.cancel()
        for watcher in list(lobby.watchers):
            self._watching.pop(watcher, None)
            if self.cluster is not None:
                self.cluster.unwatched(watcher, lobby)
        lobby.watchers.clear()
        # Nothing calls the game once its lobby is closed: letting go of it
        # (and of the game's clock) breaks the lobby's cycles, so that the
        # lobby, its game and its transcript are freed at once instead of
        # waiting for the cyclic collector (19 objects a game).
        lobby.game = None
        lobby._stepped = None
        if over is None:
            self.log.info("lobby closed: {players}", players=" ".join(lobby.players))
        else:
            # The operator's record of every game, at info: its sentence is
            # made here, once (Twisted's formatter would parse a format of
            # five fields for each game, a sixth of a game's cost); the
            # fields stay in the event for JSON logs.
            players = " ".join(lobby.players)
            winners = " ".join(over.winners) or "none"
            scores = dict(over.scores)
            self.log.info(
                "{record}",
                record=f"game over ({over.reason}): {self.game_name} {players}, "
                f"scores {scores}, winners {winners}",
                reason=over.reason,
                game=self.game_name,
                players=players,
                scores=scores,
                winners=winners,
            )

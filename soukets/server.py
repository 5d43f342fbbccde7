"""
One soukets server's shared state, with no I/O: its settings, its sessions,
its channels and its lobbies.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from soukets.frames import (
    CONTROL,
    DEFAULT_MAX_LINE,
    FORBIDDEN,
    ProtocolError,
    encode_frame,
)
from soukets.games import GameFactory, load_game
from soukets.games.base import GameSettings
from soukets.hub import ChannelHub
from soukets.lobby import LobbyService
from soukets.outbox import Owed
from soukets.session import Session
from soukets.tally import Tally


@attrs.frozen
class ServerSettings:
    """
    The options of one soukets server that shape what clients see.
    """

    lobby_size: int = 2
    game: str = "rps"
    move_timeout: float = 10.0
    rounds: int = 1
    max_clients: int = 1000
    max_line: int = DEFAULT_MAX_LINE
    max_subscriptions: int = 100
    auto_queue: bool = True
    max_rate: float = 1000.0
    rate_burst: float = 1000.0
    idle_timeout: float = 0.0  # seconds; 0 is off
    seat_hold: float = 30.0  # seconds; 0: a lost connection leaves at once
    hurry: float = 3.0  # seconds before a round's deadline; 0 is off
    bot_after: float = 0.0  # seconds; 0 is off
    spectators: bool = True

    @property
    def game_settings(self) -> GameSettings:
        return GameSettings(
            move_timeout=self.move_timeout, rounds=self.rounds, hurry=self.hurry
        )


def _local_count(server: Server) -> Deferred[int]:
    return succeed(len(server.sessions))


@attrs.define(eq=False)
class Server:
    """
    Everything one server process shares between its clients: the hub of
    channels, the lobby service, and the open sessions by client id.

    C{host_clients} returns (as a L{Deferred}) how many clients every soukets
    process on the host has; by default, this server's own count.
    """

    settings: ServerSettings
    clock: IReactorTime
    game_factory: GameFactory | None = None
    host_clients: Callable[[Server], Deferred[int]] = _local_count
    hub: ChannelHub = attrs.field(factory=ChannelHub)
    tally: Tally = attrs.field(factory=Tally)
    lobbies: LobbyService = attrs.field(init=False)
    sessions: dict[str, Session] = attrs.field(factory=dict)
    engine: Any = None
    """The engine (L{soukets.engines.IEngine}) that set itself here, if any."""
    router: Any = None
    """Where sessions send frames about other nodes' games (see the engine)."""
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _prefix: str = attrs.field(factory=lambda: secrets.token_hex(2))
    log = Logger()

    def __attrs_post_init__(self) -> None:
        factory = self.game_factory or load_game(self.settings.game)
        self.lobbies = LobbyService(
            self.hub,
            self.settings.game,
            factory,
            self.settings.lobby_size,
            self.settings.game_settings,
            self.clock,
            self.tally,
            seat_hold=self.settings.seat_hold,
            bot_after=self.settings.bot_after,
            spectators=self.settings.spectators,
        )

    def connect(
        self,
        output: Callable[[Owed], None],
        disconnect: Callable[[], None],
        pause_reading: Callable[[], None] = lambda: None,
        resume_reading: Callable[[], None] = lambda: None,
    ) -> Session:
        """
        A client was admitted: make its session (not started yet).
        """
        client_id = f"{self._prefix}-{next(self._ids)}"
        session = Session(
            client_id, self, output, disconnect, pause_reading, resume_reading
        )
        self.sessions[client_id] = session
        return session

    def forget(self, session: Session) -> None:
        """
        C{session}'s connection is gone: it leaves its game, the queue and
        every channel.
        """
        self.lobbies.connection_lost(session)
        self.hub.drop(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        if self.engine is not None:
            self.engine.forget(session)

    def adopt(self, session: Session, client_id: str) -> None:
        """
        C{session} takes the client id C{client_id} (its seat taken back):
        it is known by that id from now on.
        """
        here = self.sessions.get(session.client_id) is session
        if here:
            del self.sessions[session.client_id]
        session.client_id = client_id
        if here:  # (not for another node's client, seen from its game's node)
            self.sessions[client_id] = session

    def check_subscription_limit(self, session: Session, channel: str) -> None:
        """
        @raise ProtocolError: C{forbidden}, if subscribing C{session} to
            C{channel} would pass the per-connection limit.
        """
        current = self.hub.subscriptions(session)
        limit = self.settings.max_subscriptions
        if channel not in current and len(current) >= limit:
            raise ProtocolError(
                FORBIDDEN,
                f"a connection may subscribe to at most {limit} channels; "
                "unsubscribe from one first",
            )

    def stats(self) -> Deferred[dict[str, Any]]:
        """
        The figures of a C{stats} frame, once the host's count is known.
        """
        d = self.host_clients(self)

        def figures(host: int) -> dict[str, Any]:
            return {
                "clients": len(self.sessions),
                "host_clients": host,
                "max_clients": self.settings.max_clients,
                "queued": self.lobbies.waiting,
                "lobbies": len(self.lobbies.lobbies),
                "channels": len(self.hub),
            }

        d.addCallback(figures)
        if self.engine is not None:
            # The engine's figures (nodes, the cluster's clients and queue).
            d.addCallback(lambda own: self.engine.stats().addCallback(lambda extra: {**own, **extra}))
        return d

    def say_goodbye(self, reason: str) -> None:
        """
        Send every client C{bye} with C{reason} and drop its connection.
        """
        bye = encode_frame(CONTROL, {"type": "bye", "reason": reason})
        for session in list(self.sessions.values()):
            session.send(bye)
            session.disconnect()

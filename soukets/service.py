"""
The soukets daemon as a Twisted service: the client counter, the lobbies and
the listening endpoints, started and stopped in the right order.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from soukets.counter import HostCounterService
from soukets.games.base import SHUTDOWN
from soukets.options import Options
from soukets.protocol import SouketsFactory
from soukets.server import Server, ServerSettings
from soukets.signals import SignalService

SHUTDOWN_GRACE = 1.0
"""Seconds clients get to take their last frames before being cut off."""


class SouketsService(MultiService):
    """
    One soukets daemon.  Its children are the listening endpoints; the
    counter and the lobbies are started before them and stopped after them:

      1. stop listening;
      2. end every running game (C{game_over}, reason C{shutdown});
      3. send every client C{bye} and close its connection (aborting those
         still open after L{SHUTDOWN_GRACE} seconds);
      4. remove this process's record from the counter file.
    """

    log = Logger()

    def __init__(
        self,
        server: Server,
        counter: HostCounterService,
        factory: SouketsFactory,
        clock: IReactorTime,
    ) -> None:
        super().__init__()
        self.server = server
        self.counter = counter
        self.factory = factory
        self.clock = clock

    def _listening(self, port: Any) -> Any:
        address = port.getHost()
        self.log.info(
            "listening on {host}:{port}",
            host=getattr(address, "host", address),
            port=getattr(address, "port", ""),
        )
        return port

    def startService(self) -> None:
        self.counter.startService()
        self.server.lobbies.startService()
        super().startService()
        for listener in self:
            if not hasattr(listener, "_waitingForPort"):
                continue  # not a listening endpoint
            # Twisted keeps the port each listener listens on in this
            # Deferred; it has fired by now, since TCP listens at once.
            listener._waitingForPort.addCallback(self._listening)
        settings = self.server.settings
        self.log.info(
            "soukets running {game} in lobbies of {size}, at most "
            "{max_clients} clients on this host (counter {counter})",
            game=settings.game,
            size=settings.lobby_size,
            max_clients=settings.max_clients,
            counter=str(self.counter.path),
        )

    def stopService(self) -> Deferred[Any]:
        self.log.info(
            "soukets shutting down: {clients} client(s), {lobbies} game(s)",
            clients=len(self.server.sessions),
            lobbies=len(self.server.lobbies.lobbies),
        )
        d = Deferred.fromCoroutine(self._stop())
        return d

    async def _stop(self) -> None:
        await super().stopService()
        self.server.lobbies.stopService()
        self.server.say_goodbye(SHUTDOWN)
        await self.factory.close_all(self.clock, SHUTDOWN_GRACE)
        await self.counter.stopService()
        # twistd re-raises the signal that stopped it once the reactor is
        # done; a shutdown that went cleanly exits 0 instead.
        if getattr(self.clock, "_exitSignal", None) in (signal.SIGTERM, signal.SIGINT):
            self.clock._exitSignal = None  # type: ignore[attr-defined]


def make_service(options: Options, reactor: Any = None) -> SouketsService:
    """
    Build the daemon from its parsed command line.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = ServerSettings(
        lobby_size=options["taille-lobby"],
        game=options["game"],
        move_timeout=options["move-timeout"],
        rounds=options["rounds"],
        max_clients=options["max-clients"],
        max_line=options["max-line"],
        max_subscriptions=options["max-subscriptions"],
        auto_queue=not options["no-auto-queue"],
        max_rate=options["max-rate"],
        rate_burst=options["rate-burst"],
        idle_timeout=options["idle-timeout"],
    )
    counter = HostCounterService(
        options["counter-file"], settings.max_clients, reactor=reactor
    )
    server = Server(settings, reactor, host_clients=counter.host_clients)
    factory = SouketsFactory(server, counter, max_buffer=options["max-buffer"])
    service = SouketsService(server, counter, factory, reactor)
    SignalService(reactor).setServiceParent(service)
    for description in options["listen"]:
        strports.service(description, factory, reactor=reactor).setServiceParent(
            service
        )
    return service

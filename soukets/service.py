"""
The soukets daemon as a Twisted service: the client counter, the lobbies,
the listening endpoints (TCP lines, and the web site with its WebSocket),
started and stopped in the right order.
"""

from __future__ import annotations

import gc
import signal
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import ILogObserver, Logger

from soukets.counter import HostCounterService
from soukets.engines.local import LocalEngine
from soukets.games.base import SHUTDOWN
from soukets.kernel import DESCRIPTORS_SPARE, kernel_backlog_cap, reserve_descriptors
from soukets.logs import make_observer
from soukets.options import Options
from soukets.server import Server, ServerSettings
from soukets.signals import SignalService
from soukets.transports.connection import Gate
from soukets.transports.tcp import SouketsFactory

SHUTDOWN_GRACE = 1.0
"""Seconds clients get to take their last frames before being cut off."""


def tune_garbage_collector() -> None:
    """
    Leave the objects made at start-up (modules, classes, functions, the
    services: most of the objects a fresh daemon holds) out of every later
    collection of cyclic garbage, which then only walks what clients and
    games made.  Measured with bench/gamepath.py: 8 % off a game's cost.
    (Rarer collections, thresholds of 5,000 to 50,000, saved 6 % more but
    let the memory-waves test's RSS climb wave after wave: cycles of
    finished games waited too long for a full collection.)
    """
    gc.collect()
    gc.freeze()


class Listener(StreamServerEndpointService):
    """
    One listening endpoint, named by the option that asked for it
    (C{--listen} or C{--web}) and its endpoint string.  A port that cannot
    be had stops the daemon's start with a one-line reason.
    """

    _raiseSynchronously = True

    def __init__(self, option: str, description: str, factory: Factory, reactor: Any) -> None:
        from twisted.internet import endpoints

        super().__init__(endpoints.serverFromString(reactor, description), factory)
        self.option = option
        self.description = description

    def privilegedStartService(self) -> None:
        # twistd listens here, before dropping privileges.
        self._refuse_in_one_line(super().privilegedStartService)

    def startService(self) -> None:
        self._refuse_in_one_line(super().startService)

    def _refuse_in_one_line(self, start: Any) -> None:
        try:
            start()
        except CannotListenError as e:
            raise SystemExit(
                f"soukets: --{self.option} {self.description}: cannot listen "
                f"on port {e.port}: {_reason(e)}"
            )
        except Exception as e:
            raise SystemExit(
                f"soukets: --{self.option} {self.description}: cannot listen: "
                f"{type(e).__name__}: {e}"
            )


def _reason(error: CannotListenError) -> str:
    socket_error = error.socketError
    text = getattr(socket_error, "strerror", None) or str(socket_error)
    if getattr(socket_error, "errno", None) == 98:
        text += " (another program, or another soukets, is using it)"
    return text


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
        gate: Gate,
        clock: IReactorTime,
        log_observer: ILogObserver | None = None,
        engine: Any = None,
    ) -> None:
        super().__init__()
        self.engine = engine or LocalEngine()
        self.engine.attach(server)
        self.server = server
        self.counter = counter
        self.gate = gate
        self.clock = clock
        self.log_observer = log_observer

    def setServiceParent(self, parent: Any) -> None:
        # twistd hands its Application here before it starts logging, and
        # logs through the Application's ILogObserver if it has one.
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def problem(self) -> str | None:
        """
        Why the server does not accept clients now, or L{None} if it does.
        """
        if not self.running:
            return "stopping"
        if self.counter.last_total >= self.counter.max_clients:
            return "full"
        return None

    def _listening(self, port: Any, listener: Listener) -> Any:
        address = port.getHost()
        host = getattr(address, "host", address)
        number = getattr(address, "port", "")
        secure = listener.description.startswith("ssl:")
        if listener.option == "web":
            scheme = "https" if secure else "http"
            self.log.info(
                "web site on {scheme}://{host}:{port}/ (WebSocket at /ws)",
                scheme=scheme, host=host, port=number,
            )
        else:
            self.log.info(
                "listening on {host}:{port}{tls}", host=host, port=number,
                tls=" (TLS)" if secure else "",
            )
        backlog, cap = getattr(port, "backlog", None), kernel_backlog_cap()
        if isinstance(backlog, int) and cap is not None and backlog > cap:
            self.log.warn(
                "--{option} {description}: the kernel queues at most {cap} "
                "connections not yet accepted (net.core.somaxconn), not "
                "{backlog}; past that, connecting clients wait a second to "
                "try again.  For storms that large: sysctl -w "
                "net.core.somaxconn={backlog}",
                option=listener.option, description=listener.description,
                cap=cap, backlog=backlog,
            )
        return port

    def startService(self) -> None:
        tune_garbage_collector()
        # (Before the counter's thread starts.)
        reserve_descriptors(self.server.settings.max_clients + DESCRIPTORS_SPARE)
        self.counter.startService()
        self.engine.startService()
        self.server.lobbies.startService()
        super().startService()
        for listener in self:
            if isinstance(listener, Listener):
                # TCP listens at once: this Deferred has fired by now.
                listener._waitingForPort.addCallback(self._listening, listener)
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
        await self.gate.close_all(self.clock, SHUTDOWN_GRACE)
        await self.engine.stop()
        await self.counter.stopService()
        # twistd re-raises the signal that stopped it once the reactor is
        # done; a shutdown that went cleanly exits 0 instead.
        if getattr(self.clock, "_exitSignal", None) in (signal.SIGTERM, signal.SIGINT):
            self.clock._exitSignal = None  # type: ignore[attr-defined]


def settings_from(options: Options) -> ServerSettings:
    """
    The server settings a parsed command line asks for.
    """
    return ServerSettings(
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
        seat_hold=options["seat-hold"],
        hurry=options["hurry"],
        bot_after=options["bot-after"],
        spectators=not options["no-spectators"],
    )


def make_service(options: Options, reactor: Any = None) -> SouketsService:
    """
    Build the daemon from its parsed command line.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = settings_from(options)
    engine: Any = None
    node: dict[str, str] = {}
    address = options.get("engine-address")
    if address is not None:
        from soukets.engines.redis import EngineUnreachable, Keys, RedisEngine, reserve_node

        try:
            node["prefix"] = reserve_node(address, Keys(options["engine-prefix"]))
        except EngineUnreachable as e:
            raise SystemExit(f"soukets: --engine {address}: {e}")
    counter = HostCounterService(
        options["counter-file"], settings.max_clients, reactor=reactor
    )
    server = Server(settings, reactor, host_clients=counter.host_clients, **node)
    if address is not None:
        engine = RedisEngine(address, node["prefix"], reactor, options["engine-prefix"])
    gate = Gate(server, counter, max_buffer=options["max-buffer"])
    observer = make_observer(
        options["log-level"], options["log-format"], getattr(options, "parent", None)
    )
    service = SouketsService(server, counter, gate, reactor, observer, engine)
    SignalService(reactor).setServiceParent(service)
    lines = SouketsFactory(gate)
    for description in options["listen"]:
        Listener("listen", description, lines, reactor).setServiceParent(service)
    if options["web"]:
        # Imported only for a daemon that serves the site.
        from soukets.metrics import make_registry
        from soukets.transports.websocket import SouketsWebSocketFactory
        from soukets.web import make_site

        site = make_site(
            SouketsWebSocketFactory(gate, options["web-origin"], options["web-ping"]),
            make_registry(server, counter),
            service.problem,
        )
        for description in options["web"]:
            Listener("web", description, site, reactor).setServiceParent(service)
    return service

"""
Every daemon option reaches what it governs: for each option, a
non-default value changes what a client of the service built by
L{make_service} sees (or, where that needs a live socket, what the object
that enforces it holds).  The table has one row per option, and a test
fails when an option has no row, so a new option cannot be added unwired.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Callable

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from soukets.options import Options
from soukets.service import SouketsService, make_service

from tests.redis import RedisServer
from tests.support import Harness


class Wired:
    """
    A service built from a command line on a L{Clock}, with a way to
    connect recorded sessions to its server.
    """

    def __init__(self, case: SynchronousTestCase, *args: str) -> None:
        self.options = Options()
        self.options.parseOptions(
            ["--counter-file", case.mktemp() + "/c.json", *args]
        )
        self.clock = Clock()
        # The log observer writes to the standard output it finds: this.
        self.log = io.StringIO()
        real, sys.stdout = sys.stdout, self.log
        try:
            self.service: SouketsService = make_service(self.options, reactor=self.clock)
        finally:
            sys.stdout = real
        self.server = self.service.server
        self.harness = Harness(self.server.settings, self.clock, self.server)
        self.dropped = self.harness.disconnected

    def connect(self):
        return self.harness.connect()

    def send(self, session, *lines: str) -> list[dict[str, Any]]:
        """
        C{session} sends C{lines} in one read; the bodies of its answers.
        """
        self.harness.take(session)
        session.data_received(b"".join(line.encode() + b"\n" for line in lines))
        return self.frames(session)

    def frames(self, session) -> list[dict[str, Any]]:
        return [body for _, body in self.harness.frames(session)]


def lobby_of_three(w: Wired) -> bool:
    a, _ = w.connect(), w.connect()
    if any(f["type"] == "matched" for f in w.frames(a)):
        return False
    w.connect()
    return any(f["type"] == "matched" for f in w.frames(a))


def move_timeout_of(w: Wired) -> float:
    a, _ = w.connect(), w.connect()
    return [f for f in w.frames(a) if f["type"] == "round"][0]["timeout"]


def rounds_played(w: Wired) -> int:
    a, _ = w.connect(), w.connect()
    w.clock.advance(1000)
    w.clock.advance(1000)
    w.clock.advance(1000)
    return sum(f["type"] == "result" for f in w.frames(a))


def welcome_game(w: Wired) -> str:
    a = w.connect()
    return w.frames(a)[0]["game"]


def line_limit(w: Wired) -> list[str]:
    a = w.connect()
    return [f.get("code") for f in w.send(a, ";" + " " * 150 + '{"type":"ping"}')]


def subscription_limit(w: Wired) -> list[str]:
    a = w.connect()
    frames = w.send(a, *(f'c{i};{{"type":"subscribe"}}' for i in range(3)))
    return [f.get("code", f["type"]) for f in frames]


def rate_limited(w: Wired) -> bool:
    a = w.connect()
    frames = w.send(a, *([';{"type":"ping"}'] * 30))
    return any(f.get("code") == "rate_limited" for f in frames)


def pongs_in_burst(w: Wired) -> int:
    a = w.connect()
    return sum(f["type"] == "pong" for f in w.send(a, *([';{"type":"ping"}'] * 40)))


def idle_dropped(w: Wired) -> bool:
    a = w.connect()
    w.clock.advance(6)
    w.clock.advance(6)
    return a.client_id in w.dropped


def auto_queued(w: Wired) -> bool:
    a = w.connect()
    return any(f["type"] == "queued" for f in w.frames(a))


def listen_ports(w: Wired) -> list[Any]:
    return [
        getattr(child.endpoint, "_port", None)
        for child in w.service
        if getattr(child, "option", None) == "listen"
    ]


def web_ports(w: Wired) -> list[Any]:
    return [
        getattr(child.endpoint, "_port", None)
        for child in w.service
        if getattr(child, "option", None) == "web"
    ]


def origins(w: Wired) -> list[Any]:
    site = [c.factory for c in w.service if getattr(c, "option", None) == "web"][0]
    websocket = site.resource.children[b"ws"]._factory
    return sorted(websocket.origins)


def logged(w: Wired) -> str:
    """
    What the service's log observer writes for one info event.
    """
    from twisted.logger import LogLevel

    w.service.log_observer(
        {"log_level": LogLevel.info, "log_format": "hi", "log_time": 0.0, "log_namespace": "t"}
    )
    return w.log.getvalue()


def seat_held(w: Wired) -> bool:
    a, b = w.connect(), w.connect()
    w.frames(b)
    a.connection_lost()
    return any(f["type"] == "away" for f in w.frames(b))


def hurried(w: Wired) -> bool:
    a, _ = w.connect(), w.connect()
    w.clock.advance(7.5)
    return any(f["type"] == "hurry" for f in w.frames(a))


def bots_matched(w: Wired) -> bool:
    a = w.connect()
    w.clock.advance(5)
    return any(f["type"] == "matched" and f.get("bots") for f in w.frames(a))


# option: (arguments, what to observe, value by default, value with the option)
ROWS: dict[str, tuple[tuple[str, ...], Callable[[Wired], Any], Any, Any]] = {
    "taille-lobby": (("--taille-lobby", "3"), lobby_of_three, False, True),
    "lobby-size": (("--lobby-size", "3"), lobby_of_three, False, True),
    "max-clients": (("--max-clients", "7"), lambda w: (w.service.counter.max_clients, w.server.settings.max_clients), (1000, 1000), (7, 7)),
    "move-timeout": (("--move-timeout", "2.5"), move_timeout_of, 10.0, 2.5),
    "rounds": (("--rounds", "3"), rounds_played, 1, 3),
    "game": (("--game", "chat"), welcome_game, "rps", "chat"),
    "counter-file": (("--counter-file", "/tmp/soukets-wiring-test/c.json"), lambda w: str(w.service.counter.path).endswith("soukets-wiring-test/c.json"), False, True),
    "max-line": (("--max-line", "100"), line_limit, [None], ["line_too_long"]),
    "max-buffer": (("--max-buffer", "2048"), lambda w: w.service.gate.max_buffer, 1024 * 1024, 2048),
    "max-subscriptions": (("--max-subscriptions", "2"), subscription_limit, ["subscribed"] * 3, ["subscribed", "subscribed", "forbidden"]),
    "max-rate": (("--max-rate", "10", "--rate-burst", "10"), rate_limited, False, True),
    "rate-burst": (("--max-rate", "1000", "--rate-burst", "5"), pongs_in_burst, 40, 5),
    "idle-timeout": (("--idle-timeout", "10"), idle_dropped, False, True),
    "no-auto-queue": (("--no-auto-queue",), auto_queued, True, False),
    "listen": (("--listen", "tcp:7781:interface=127.0.0.1"), listen_ports, [7777], [7781]),
    "web": (("--web", "tcp:7782"), web_ports, [7780], [7782]),
    "no-web": (("--no-web",), web_ports, [7780], []),
    "log-level": (("--log-level", "warn"), lambda w: "hi" in logged(w), True, False),
    "log-format": (("--log-format", "json"), lambda w: logged(w)[:1] == "{", False, True),
    "seat-hold": (("--seat-hold", "0"), seat_held, True, False),
    "hurry": (("--hurry", "0"), hurried, True, False),
    "bot-after": (("--bot-after", "5"), bots_matched, False, True),
    "no-spectators": (("--no-spectators",), lambda w: w.send(w.connect(), ';{"type":"games"}')[-1]["type"], "games", "error"),
    "web-ping": (("--web-ping", "5"), lambda w: [c.factory.resource.children[b"ws"]._factory.autoPingInterval for c in w.service if getattr(c, "option", None) == "web"], [30.0], [5.0]),
    "web-origin": (("--web-origin", "https://Example.org:443"), origins, [], ["https://example.org"]),
    # ({redis}: the URL of a real Redis the test starts.)
    "engine": (("--engine", "{redis}"), lambda w: type(w.service.engine).__name__, "LocalEngine", "RedisEngine"),
    "engine-prefix": (("--engine", "{redis}", "--engine-prefix", "eu"), lambda w: getattr(getattr(w.service.engine, "keys", None), "prefix", None), None, "eu"),
}


class OptionWiringTests(SynchronousTestCase):
    def test_every_option_has_a_row(self) -> None:
        names = {name.rstrip("=") for name in Options().longOpt} - {"help", "version"}
        self.assertEqual(names - ROWS.keys(), set(), "options without a wiring row")

    def test_rows(self) -> None:
        redis = None
        for option, (args, observe, default, changed) in ROWS.items():
            if "{redis}" in args:
                if redis is None:
                    redis = RedisServer(self.mktemp())
                    self.addCleanup(redis.stop)
                args = tuple(redis.url if arg == "{redis}" else arg for arg in args)
            with self.subTest(option=option):
                if option == "counter-file":
                    self.assertEqual(observe(Wired(self)), default)
                    options = Options()
                    options.parseOptions(list(args))
                    service = make_service(options, reactor=Clock())
                    self.assertTrue(str(service.counter.path).endswith("c.json"))
                    self.assertEqual(str(service.counter.path), args[1])
                    continue
                self.assertEqual(observe(Wired(self)), default, f"{option} by default")
                self.assertEqual(observe(Wired(self, *args)), changed, f"{option} {args}")

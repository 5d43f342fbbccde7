"""
The command line of the soukets daemon (C{twistd soukets --help}).
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import endpoints
from twisted.python import usage

from soukets.counter import CounterError, default_counter_file, prepare_directory
from soukets.frames import DEFAULT_MAX_LINE
from soukets.games import available_games
from soukets.transports.connection import DEFAULT_MAX_BUFFER

DEFAULT_LISTEN = "tcp:7777:backlog=4096"
DEFAULT_WEB = "tcp:7780:backlog=4096"


def _positive_int(name: str, minimum: int = 1):
    def coerce(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"--{name} takes a whole number, not {value!r}")
        if number < minimum:
            raise ValueError(f"--{name} must be at least {minimum}, not {number}")
        return number

    coerce.coerceDoc = f"A whole number, at least {minimum}."  # type: ignore[attr-defined]
    return coerce


def _positive_float(name: str, allow_zero: bool = False):
    def coerce(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--{name} takes a number, not {value!r}")
        if not (0 <= number if allow_zero else 0 < number) or number == float("inf"):
            raise ValueError(
                f"--{name} must be a {'non-negative' if allow_zero else 'positive'} "
                f"number, not {value}"
            )
        return number

    coerce.coerceDoc = "A number."  # type: ignore[attr-defined]
    return coerce


_seconds = _positive_float("move-timeout")


class Options(usage.Options):
    """
    The options of C{twistd soukets}: a channel server with matchmaking and
    a game in each lobby.
    """

    synopsis = "[options]"
    longdesc = (
        "soukets: a real-time channel server speaking CHANNEL;JSON lines, "
        "with a matchmaking queue that puts --taille-lobby players in a lobby "
        "channel running --game; browsers play and chat on the --web site. "
        "The protocol reference and the operations guide are in the "
        "project's docs/ (docs/protocol.rst, docs/operations.rst)."
    )

    optFlags = [
        [
            "no-auto-queue",
            None,
            "Do not queue new connections; they send queue themselves.",
        ],
        [
            "no-spectators",
            None,
            "Nobody may list or watch running games (games and watch are "
            "forbidden).",
        ],
        [
            "no-web",
            None,
            "Serve no web site (no browser page, WebSocket, /metrics or "
            "/healthz).",
        ],
    ]

    optParameters = [
        [
            "engine",
            None,
            "local",
            "local (one process is the whole server), or "
            "redis://[[user]:password@]host:port[/db] (rediss:// for TLS): "
            "every soukets process on that Redis, with the same "
            "--engine-prefix, is one server.",
        ],
        [
            "engine-prefix",
            None,
            "soukets",
            "What the names of this server's keys and channels in Redis "
            "start with: servers with different prefixes share a Redis "
            "without meeting.",
        ],
        [
            "taille-lobby",
            None,
            2,
            "Players per lobby, at least 2 (alias: --lobby-size).",
            _positive_int("taille-lobby", 2),
        ],
        [
            "max-clients",
            None,
            1000,
            "Simultaneous clients on this host, across every soukets "
            "process sharing --counter-file.",
            _positive_int("max-clients"),
        ],
        [
            "move-timeout",
            None,
            10.0,
            "Seconds each player has to move in a round.",
            _seconds,
        ],
        ["rounds", None, 1, "Rounds per game.", _positive_int("rounds")],
        ["game", None, "rps", "The game each lobby runs: one of the installed "
         f"games ({', '.join(available_games())})."],
        [
            "counter-file",
            None,
            None,
            "The file-locked client counter shared by every soukets process "
            "on the host [default: $XDG_RUNTIME_DIR/soukets/clients.json, or "
            "/tmp/soukets-UID/clients.json without XDG_RUNTIME_DIR]",
        ],
        [
            "max-line",
            None,
            DEFAULT_MAX_LINE,
            "Longest accepted line, in bytes.",
            _positive_int("max-line", 64),
        ],
        [
            "max-buffer",
            None,
            DEFAULT_MAX_BUFFER,
            "Bytes of unsent output a client may hold before it is "
            "disconnected as a slow reader.",
            _positive_int("max-buffer", 1024),
        ],
        [
            "max-subscriptions",
            None,
            100,
            "Channels one connection may subscribe to.",
            _positive_int("max-subscriptions"),
        ],
        [
            "max-rate",
            None,
            1000.0,
            "Frames a second one connection may send on average; over it, "
            "frames are dropped with a rate_limited error (at most one a "
            "second), and a client that keeps flooding is disconnected.",
            _positive_float("max-rate"),
        ],
        [
            "rate-burst",
            None,
            None,
            "Frames one connection may send at once above --max-rate "
            "[default: the same as --max-rate]",
            _positive_float("rate-burst"),
        ],
        [
            "seat-hold",
            None,
            30.0,
            "Seconds a player's seat is kept when its connection is lost "
            "mid-game, for it to come back with its resume token (0: it "
            "leaves at once).",
            _positive_float("seat-hold", allow_zero=True),
        ],
        [
            "hurry",
            None,
            3.0,
            "Warn each player who has not moved this many seconds before "
            "the round's deadline (0: never).",
            _positive_float("hurry", allow_zero=True),
        ],
        [
            "bot-after",
            None,
            0.0,
            "Fill the lobby of a player who waited this many seconds in the "
            "queue with bots (0: never).",
            _positive_float("bot-after", allow_zero=True),
        ],
        [
            "web-ping",
            None,
            30.0,
            "Seconds between the WebSocket pings the server sends; a browser "
            "that has not answered one by the next is dropped.",
            _positive_float("web-ping"),
        ],
        [
            "idle-timeout",
            None,
            0.0,
            "Drop a client silent for this many seconds (0: never); it is "
            "sent a ping halfway.",
            _positive_float("idle-timeout", allow_zero=True),
        ],
    ]

    def opt_log_level(self, level: str) -> None:
        """
        Log events of this level and above: debug, info, warn, error or
        critical [default: info].
        """
        from soukets.logs import LEVELS

        if level not in LEVELS:
            raise usage.UsageError(
                f"--log-level {level!r}: choose one of {', '.join(LEVELS)}"
            )
        self["log-level"] = level

    def opt_log_format(self, format: str) -> None:
        """
        Write the log as text lines, or as one JSON object a line (for
        journald, Loki and the like): text or json [default: text].
        """
        from soukets.logs import FORMATS

        if format not in FORMATS:
            raise usage.UsageError(
                f"--log-format {format!r}: choose one of {', '.join(FORMATS)}"
            )
        self["log-format"] = format

    compData = usage.Completions(
        optActions={"counter-file": usage.CompleteFiles()}
    )

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["web"] = []
        self["web-origin"] = []
        self["log-level"] = "info"
        self["log-format"] = "text"

    def opt_web(self, endpoint: str) -> None:
        """
        Serve the web site (the page at /, WebSocket at /ws, /metrics,
        /healthz) on this Twisted endpoint string; repeatable; ssl: gives
        HTTPS and wss: [default: tcp:7780:backlog=4096].
        """
        self["web"].append(endpoint)

    def opt_web_origin(self, origin: str) -> None:
        """
        Also accept WebSocket connections from browser pages of this origin
        (scheme://host[:port]); repeatable [default: only the site's own].
        """
        from soukets.transports.websocket import normalize_origin

        if normalize_origin(origin) is None:
            raise usage.UsageError(
                f"--web-origin {origin!r} is not an origin such as "
                "https://example.org or http://localhost:8080"
            )
        self["web-origin"].append(origin)

    def opt_listen(self, endpoint: str) -> None:
        """
        Listen on this Twisted endpoint string; repeatable
        [default: tcp:7777:backlog=4096]. Keep backlog= in your own tcp
        endpoints: Twisted's default backlog is 50.
        """
        self["listen"].append(endpoint)

    def opt_lobby_size(self, value: str) -> None:
        """
        Alias for --taille-lobby.
        """
        try:
            self["taille-lobby"] = _positive_int("lobby-size", 2)(value)
        except ValueError as e:
            raise usage.UsageError(str(e))

    def opt_version(self) -> None:
        """
        Print soukets' version and exit.
        """
        from soukets import __version__

        print(f"soukets {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        if self["rate-burst"] is None:
            self["rate-burst"] = self["max-rate"]
        from twisted.internet import reactor

        if self["no-web"]:
            self["web"] = []
        elif not self["web"]:
            self["web"] = [DEFAULT_WEB]
        for option in ("listen", "web"):
            for description in self[option]:
                try:
                    endpoints.serverFromString(reactor, description)
                except IndexError:
                    if description.startswith("systemd:"):
                        raise no_systemd_socket(option, description)
                    raise usage.UsageError(
                        f"--{option} {description!r} is not a usable endpoint"
                    )
                except Exception as e:
                    raise usage.UsageError(
                        f"--{option} {description!r} is not a usable endpoint: {e}"
                    )
        from soukets.engines import EngineURLError, parse_engine

        try:
            self["engine-address"] = parse_engine(self["engine"])
        except EngineURLError as e:
            raise usage.UsageError(f"--engine: {e}")
        prefix = self["engine-prefix"]
        if not prefix or not prefix.isprintable() or " " in prefix:
            raise usage.UsageError(
                f"--engine-prefix {prefix!r}: use a word such as soukets or game-eu"
            )
        games = available_games()
        if self["game"] not in games:
            raise usage.UsageError(
                f"--game {self['game']!r} is not a registered game; "
                f"choose one of: {', '.join(games)}"
            )
        path = Path(self["counter-file"] or default_counter_file())
        self["counter-file"] = path
        check_counter_file(path)


def no_systemd_socket(option: str, description: str) -> usage.UsageError:
    """
    The one-line refusal of a C{systemd:} endpoint whose socket systemd did
    not pass (Twisted itself only says "list index out of range").
    """
    return usage.UsageError(
        f"--{option} {description}: systemd passed no socket for it "
        "(LISTEN_FDS); start soukets through its .socket unit (see "
        "contrib/socket-activation/), or try it with systemd-socket-activate "
        "-l 7777 --fdname=soukets soukets --listen systemd:domain=INET:index=0"
    )


def check_counter_file(path: Path) -> None:
    """
    Make sure the counter file can be used: its directory exists (it is
    made if missing) and both are writable.

    @raise usage.UsageError: with a one-line reason, if it cannot be used.
    """
    try:
        prepare_directory(path)
    except CounterError as e:
        raise usage.UsageError(f"--counter-file {path}: {e}")
    if path.is_dir():
        raise usage.UsageError(f"--counter-file {path} is a directory")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise usage.UsageError(
            f"--counter-file {path}: its directory is not writable"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise usage.UsageError(
            f"--counter-file {path} cannot be read and written"
        )


# usage.Options prints an opt_ method's docstring as its help: one line.
for _name in dir(Options):
    if _name.startswith("opt_"):
        _method = getattr(Options, _name)
        if _method.__doc__:
            _method.__doc__ = " ".join(_method.__doc__.split())


class CommandLine(Options):
    """
    The options as twistd parses them for C{twistd soukets} and C{soukets}:
    a refusal is one line naming soukets and the option, not the whole
    usage text.
    """

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise SystemExit(f"soukets: {e} (see soukets --help)")

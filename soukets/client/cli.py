"""
C{soukets-client}: the command line of the terminal client.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.python import usage

from soukets.client.app import ClientApp, ServerConnection
from soukets.client.local import STRATEGIES, local_settings, play_locally
from soukets.client.model import PlayerView
from soukets.client.terminal import RawTerminal, ScriptUI, TerminalUI, stdin_is_terminal


class ClientOptions(usage.Options):
    """
    The options of C{soukets-client}.
    """

    synopsis = "Usage: soukets-client [options] [HOST:PORT]"
    longdesc = (
        "Play soukets games and use its channels from a terminal. "
        "HOST:PORT defaults to 127.0.0.1:7777; --local needs no server. "
        "Type /help once connected."
    )
    optFlags = [
        ["local", None, "Play against the computer, with no server."],
        ["script", None, "Read commands from standard input, print one line per "
         "event, no prompt or countdown (the default when stdin is not a terminal)."],
        ["json", None, "Also print every raw frame received."],
    ]
    optParameters = [
        ["name", "n", None, "Your display name."],
        ["bot", None, "frequency", "With --local: the computer's strategy, "
         "frequency (plays what beats your favourite) or random."],
        ["move-timeout", None, 10.0, "With --local: seconds per move.", float],
        ["rounds", None, 1, "With --local: rounds per game.", int],
    ]

    def parseArgs(self, address: str = "127.0.0.1:7777") -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise usage.UsageError(f"{address!r} is not HOST:PORT, e.g. 127.0.0.1:7777")
        self["host"] = host.strip("[]") or "127.0.0.1"
        self["port"] = int(port)
        self["address"] = address

    def postOptions(self) -> None:
        if self["bot"] not in STRATEGIES:
            raise usage.UsageError(f"--bot is one of: {', '.join(STRATEGIES)}")
        if self["move-timeout"] <= 0 or self["rounds"] < 1:
            raise usage.UsageError("--move-timeout must be positive and --rounds at least 1")
        if self["name"] is not None and not 1 <= len(self["name"]) <= 32:
            raise usage.UsageError("--name is 1 to 32 characters")


def options_first(argv: list[str]) -> list[str]:
    """
    C{argv} with the options before the address, as getopt wants them
    (C{soukets-client 127.0.0.1:7777 --name alice} is fine too).
    """
    takes_value = {f"--{p[0]}" for p in ClientOptions.optParameters} | {
        f"-{p[1]}" for p in ClientOptions.optParameters if p[1]
    }
    options: list[str] = []
    positional: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            positional.extend(args)
        elif arg.startswith("-"):
            options.append(arg)
            if arg in takes_value:
                options.extend(list(itertools.islice(args, 1)))
        else:
            positional.append(arg)
    return options + positional


def run(reactor: Any, *argv: str) -> Any:
    options = ClientOptions()
    try:
        options.parseOptions(options_first(list(argv)))
    except usage.UsageError as e:
        sys.stderr.write(f"soukets-client: {e}\n{options}")
        raise SystemExit(2)

    script = options["script"] or not stdin_is_terminal()
    server = "soukets (local)" if options["local"] else f"soukets {options['address']}"
    app: ClientApp
    view = PlayerView(
        reactor,
        say=lambda text: app.show(text),
        name=options["name"],
        server=server,
        hold_moves=script,
    )
    app = ClientApp(reactor, view, raw=options["json"])
    if script:
        face: Any = ScriptUI(app.typed, app.input_ended, app.face_closed)
    else:
        face = TerminalUI(
            reactor,
            app.typed,
            lambda: app.finish(0),
            view.status,
            RawTerminal(sys.stdin.fileno()),
            app.face_closed,
        )
    app.face = face
    StandardIO(face, reactor=reactor)

    if options["local"]:
        play_locally(
            app,
            reactor,
            local_settings(options["move-timeout"], options["rounds"]),
            options["bot"],
        )
    else:
        endpoint = HostnameEndpoint(reactor, options["host"], options["port"], timeout=10)
        connecting = connectProtocol(endpoint, ServerConnection(app))

        def failed(failure: Any) -> None:
            app.show(f"cannot connect to {options['address']}: {failure.getErrorMessage()}")
            app.finish(1)

        connecting.addErrback(failed)

    def exit_with(code: int) -> None:
        raise SystemExit(code)

    return app.done.addCallback(exit_with)


def main() -> None:
    react(run, sys.argv[1:])


if __name__ == "__main__":
    main()

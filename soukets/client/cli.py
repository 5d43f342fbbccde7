"""
C{soukets-client}: the command line of the terminal client.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.python import usage

from soukets.client.app import ClientApp, ServerConnection
from soukets.client.local import STRATEGIES, local_settings, play_locally
from soukets.client.model import PlayerView
from soukets.client.terminal import RawTerminal, ScriptUI, TerminalUI, stdin_is_terminal


DEFAULT_PORT = 7777


class ClientOptions(usage.Options):
    """
    The options of C{soukets-client}.
    """

    synopsis = "Usage: soukets-client [options] [ADDRESS]"
    longdesc = (
        "Play soukets games and use its channels from a terminal. "
        "ADDRESS is HOST, HOST:PORT, :PORT, PORT or [IPv6]:PORT "
        f"[default: 127.0.0.1:{DEFAULT_PORT}]; --local needs no server. "
        "Type /help once connected."
    )
    optFlags = [
        ["local", None, "Play against the computer, with no server."],
        ["script", None, "Read commands from standard input, print one line per "
         "event, no prompt or countdown (the default when stdin is not a terminal)."],
        ["json", None, "Also print every raw frame received."],
        ["tls", None, "Connect over TLS (the server listens on an ssl: endpoint)."],
        ["insecure", None, "With --tls: do not check the server's certificate "
         "(a self-signed test certificate, say). Anyone in between can read "
         "and change the game."],
        ["version", None, "Print soukets' version and exit."],
    ]
    optParameters = [
        ["name", "n", None, "Your display name."],
        ["bot", None, "frequency", "With --local: the computer's strategy, "
         "frequency (plays what beats your favourite) or random."],
        ["move-timeout", None, 10.0, "With --local: seconds per move.", float],
        ["rounds", None, 1, "With --local: rounds per game.", int],
        ["ca", None, None, "With --tls: trust the certificates in this PEM file "
         "(a private CA, or a self-signed server certificate) instead of the "
         "system's."],
    ]

    def opt_version(self) -> None:
        from soukets import __version__

        print(f"soukets-client {__version__}")
        raise SystemExit(0)

    def parseArgs(self, address: str = f"127.0.0.1:{DEFAULT_PORT}") -> None:
        host, port = parse_address(address)
        self["host"] = host
        self["port"] = port
        self["address"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def postOptions(self) -> None:
        if self["bot"] not in STRATEGIES:
            raise usage.UsageError(f"--bot is one of: {', '.join(STRATEGIES)}")
        if self["move-timeout"] <= 0 or self["rounds"] < 1:
            raise usage.UsageError("--move-timeout must be positive and --rounds at least 1")
        if self["name"] is not None and not 1 <= len(self["name"]) <= 32:
            raise usage.UsageError("--name is 1 to 32 characters")
        if (self["insecure"] or self["ca"]) and not self["tls"]:
            raise usage.UsageError("--insecure and --ca go with --tls")
        if self["insecure"] and self["ca"]:
            raise usage.UsageError("--insecure checks nothing: it does not go with --ca")



def parse_address(address: str) -> tuple[str, int]:
    """
    The host and port of C{address}: C{HOST}, C{HOST:PORT}, C{:PORT}, a
    bare C{PORT}, or C{[IPv6]:PORT} (port 7777 and host 127.0.0.1 when left
    out).

    @raise usage.UsageError: it is none of these.
    """
    text = address.strip()
    host, port = text, ""
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise usage.UsageError(f"{address!r}: an IPv6 address is written [::1]:7777")
        port = rest[1:]
    elif text.isdigit():
        host, port = "", text
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:
        raise usage.UsageError(f"{address!r}: write an IPv6 address in brackets, e.g. [::1]:7777")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise usage.UsageError(f"{address!r}: the port is a number from 1 to 65535")
    return host or "127.0.0.1", int(port) if port else DEFAULT_PORT


def describe_failure(failure: Any, address: str) -> str:
    """
    Why a connection to C{address} failed, in words.
    """
    from twisted.internet import error

    if failure.check(error.ConnectionRefusedError):
        return f"nothing is listening on {address} — is the server running?"
    if failure.check(error.DNSLookupError):
        return f"cannot find the host of {address}: check its name"
    if failure.check(error.TimeoutError, error.TCPTimedOutError):
        return f"no answer from {address} within 10 s: is it reachable?"
    return f"cannot connect to {address}: {failure.getErrorMessage()}"


def tls_options(options: ClientOptions) -> Any:
    """
    How to check the server's certificate: against the system's trust
    store, the certificates of C{--ca}, or (C{--insecure}) not at all.
    """
    from twisted.internet import ssl

    if options["insecure"]:
        return ssl.CertificateOptions()
    trust = None
    if options["ca"]:
        with open(options["ca"], "rb") as pem:
            trust = ssl.Certificate.loadPEM(pem.read())
    return ssl.optionsForClientTLS(options["host"], trustRoot=trust)


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
            complete=view.completions,
        )
    if not script:
        face.alert = lambda: view.alert
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
        if options["tls"]:
            endpoint = wrapClientTLS(tls_options(options), endpoint)

        def connect() -> Any:
            return connectProtocol(endpoint, ServerConnection(app))

        def failed(failure: Any) -> None:
            app.show(describe_failure(failure, options["address"]))
            app.finish(1)

        # A connection lost mid-game is made again, and the seat taken back.
        app.reconnect = connect
        connect().addErrback(failed)

    def exit_with(code: int) -> None:
        raise SystemExit(code)

    return app.done.addCallback(exit_with)


def main() -> None:
    react(run, sys.argv[1:])


if __name__ == "__main__":
    main()

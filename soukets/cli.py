"""
The C{soukets} command: the daemon in the foreground, as
C{twistd --nodaemon --pidfile= --reactor=soukets soukets [options]} (on a
system without epoll, on twistd's default reactor).
"""

from __future__ import annotations

import select
import sys


def twistd_argv(args: list[str]) -> list[str]:
    """
    The twistd command line that runs soukets with C{args}, on
    L{soukets.reactor} where epoll exists.
    """
    reactor = ["--reactor=soukets"] if hasattr(select, "epoll") else []
    return ["twistd", "--nodaemon", "--pidfile=", *reactor, "soukets", *args]


def main(args: list[str] | None = None) -> None:
    """
    Run the soukets daemon in the foreground until it is stopped.
    """
    from twisted.scripts.twistd import run

    sys.argv = twistd_argv(sys.argv[1:] if args is None else args)
    run()


if __name__ == "__main__":
    main()

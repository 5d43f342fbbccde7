"""
The C{soukets} command: the daemon in the foreground, as
C{twistd --nodaemon --pidfile= soukets [options]}.
"""

from __future__ import annotations

import sys


def twistd_argv(args: list[str]) -> list[str]:
    """
    The twistd command line that runs soukets with C{args}.
    """
    return ["twistd", "--nodaemon", "--pidfile=", "soukets", *args]


def main(args: list[str] | None = None) -> None:
    """
    Run the soukets daemon in the foreground until it is stopped.
    """
    from twisted.scripts.twistd import run

    sys.argv = twistd_argv(sys.argv[1:] if args is None else args)
    run()


if __name__ == "__main__":
    main()

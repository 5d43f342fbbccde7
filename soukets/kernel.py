"""
What the daemon reads of the operating system's kernel and asks of it, at
start: the cap on how many connections a listening socket may queue, and
a table of file descriptors sized for its clients from the start.
"""

from __future__ import annotations

import fcntl
import os
import resource
from pathlib import Path

SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def kernel_backlog_cap(path: Path = SOMAXCONN) -> int | None:
    """
    The most connections Linux keeps queued for a listening socket until
    they are accepted (C{net.core.somaxconn}), whatever backlog the socket
    asked for; L{None} where it cannot be read.
    """
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


DESCRIPTORS_SPARE = 256
"""Descriptors reserved beside the clients': ports, logs, the counter, Redis."""


def reserve_descriptors(count: int) -> int:
    """
    Make this process's table of file descriptors hold C{count} of them
    now (at most the C{RLIMIT_NOFILE} soft limit), rather than letting it
    double as clients arrive.

    Linux grows the table when a new descriptor does not fit, and in a
    process with threads (the counter's) each growth waits for an RCU grace
    period inside C{accept}: measured on the reconnect storm, the reactor
    sat idle 6 to 11 ms at each doubling, 46 ms of a 300 ms storm, while
    connections piled up in the kernel's queue.  Growing it once, before
    any thread starts, costs nothing of the sort.  The table only holds
    pointers (8 bytes a descriptor).

    @return: how many descriptors the table was made to hold (0 if none
        were asked for or the platform refused).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        count = min(count, soft)
    if count < 1:
        return 0
    source = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # A copy at the lowest free descriptor from count - 1 up (never one
        # in use), closed at once: the table keeps its size.
        os.close(fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, count - 1))
    except OSError:
        return 0
    finally:
        os.close(source)
    return count

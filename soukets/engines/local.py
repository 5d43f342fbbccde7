"""
The local engine (the default): one process is the whole server.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from soukets.engines import IEngine


@implementer(IEngine)
class LocalEngine(Service):
    """
    The engine of a server that is one process: its hub, queue and games are
    all in memory, and it sets no hooks at all (nothing on the hot path).
    """

    name = "local"

    def attach(self, server: Any) -> None:
        pass

    def forget(self, session: Any) -> None:
        pass

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def stats(self) -> Deferred[dict[str, Any]]:
        return succeed({})

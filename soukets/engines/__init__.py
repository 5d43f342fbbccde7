"""
Engines: what makes one soukets process alone (L{local}) or one node of a
server spread over many processes and hosts (L{redis}).

The sans-IO core (hub, lobbies, sessions) never talks to Redis: it calls
the few hooks of L{IEngine}'s parts it is given, which are L{None} for the
local engine, so that one process pays nothing for what it does not use.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import attrs
from zope.interface import Attribute, Interface

DEFAULT_PREFIX = "soukets"


class EngineURLError(ValueError):
    """
    An C{--engine} value that names no engine we have.
    """


@attrs.frozen
class RedisAddress:
    """
    Where a Redis server is, and how to log in: parsed from
    C{redis://[[user]:password@]host[:port][/db]} or C{rediss://...} (TLS).
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    password: str | None = attrs.field(default=None, repr=False)
    username: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"


def parse_engine(url: str) -> RedisAddress | None:
    """
    The engine C{--engine} asks for: L{None} for C{local}, else the Redis
    server's address.

    @raise EngineURLError: for anything else, saying what is accepted.
    """
    if url == "local":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise EngineURLError(
            f"{url!r} is not an engine: use local, or "
            "redis://[:password@]host:port[/db] (rediss:// for TLS)"
        )
    try:
        port = parts.port or 6379
        path = parts.path.strip("/")
        db = int(path) if path else 0
    except ValueError as e:
        raise EngineURLError(f"{url!r}: {e}") from None
    if db < 0:
        raise EngineURLError(f"{url!r}: the db number cannot be negative")
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=db,
        password=unquote(parts.password) if parts.password is not None else None,
        username=unquote(parts.username) if parts.username else None,
        tls=parts.scheme == "rediss",
    )


class IEngine(Interface):
    """
    What one server needs of the engine that joins it to the others (a
    service of the daemon).  The hub, the lobby service and the sessions
    reach it through the attributes it sets on them in L{attach}.
    """

    name = Attribute("What C{--engine} was: C{local}, or the Redis address.")

    def attach(server):
        """
        Become C{server}'s engine: set the hooks its hub, lobby service and
        sessions call (for the local engine, none).
        """

    def forget(session):
        """
        C{session}'s connection is gone: clean up what other nodes know of
        it.
        """

    def stop():
        """
        Leave the others at once (after every client is gone); a
        L{Deferred} that fires when done.
        """

    def stats():
        """
        A L{Deferred} of the figures the engine adds to C{stats} (none for
        the local engine).
        """

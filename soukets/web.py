"""
The web site a daemon serves with C{--web}: one C{twisted.web} L{Site} with
the browser page and its files at C{/}, the WebSocket endpoint at C{/ws},
C{/metrics} for Prometheus and C{/healthz} for load balancers.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File

from autobahn.twisted.resource import WebSocketResource

from soukets.transports.websocket import SouketsWebSocketFactory

PAGE_DIRECTORY = files("soukets") / "site"
"""The browser page's files, shipped in the package."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class Page(File):
    """
    The browser page and its files: no directory listings, and headers that
    keep the page to its own origin.
    """

    def directoryListing(self) -> Resource:
        return self.forbidden

    def render_GET(self, request: Request) -> bytes | int:
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY.encode())
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        return super().render_GET(request)


class Metrics(Resource):
    """
    C{/metrics}: C{prometheus_client}'s exposition of the registry, made on
    the reactor thread (C{prometheus_client.twisted.MetricsResource}
    collects on a thread, where the server's state may change under it).
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


class Health(Resource):
    """
    C{/healthz}: C{200 ok} while the server accepts clients; C{503} with
    the reason (stopping, full) otherwise.
    """

    isLeaf = True

    def __init__(self, problem: Callable[[], str | None]) -> None:
        super().__init__()
        self.problem = problem

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        problem = self.problem()
        if problem is not None:
            request.setResponseCode(503)
            return problem.encode()
        return b"ok"


def make_site(
    websocket: SouketsWebSocketFactory,
    registry: CollectorRegistry,
    problem: Callable[[], str | None],
) -> Site:
    """
    The site: the page at C{/}, C{/ws}, C{/metrics}, C{/healthz}.
    """
    root = Page(str(PAGE_DIRECTORY))
    root.putChild(b"ws", WebSocketResource(websocket))
    root.putChild(b"metrics", Metrics(registry))
    root.putChild(b"healthz", Health(problem))
    site = Site(root)
    site.displayTracebacks = False
    return site

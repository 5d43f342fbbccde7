"""
C{/metrics}: the server's figures in Prometheus' text format, by
C{prometheus_client}.  Nothing is updated per frame for it: on each scrape,
L{ServerCollector} reads the server's state and its L{Tally}.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from soukets.counter import HostCounterService
from soukets.server import Server

TRANSPORTS = ("tcp", "websocket")


class ServerCollector(Collector):
    """
    The series of one soukets server, read at scrape time.
    """

    def __init__(self, server: Server, counter: HostCounterService) -> None:
        self.server = server
        self.counter = counter

    def collect(self) -> Iterator[Any]:
        server, tally = self.server, self.server.tally
        for name, help, value in (
            ("soukets_clients", "Clients connected to this process.", len(server.sessions)),
            (
                "soukets_host_clients",
                "Clients of every soukets process on the host's counter file "
                "(as of the last counter transaction).",
                self.counter.last_total,
            ),
            ("soukets_max_clients", "The host-wide client cap.", self.counter.max_clients),
            ("soukets_queued", "Players waiting in the matchmaking queue.", server.lobbies.waiting),
            ("soukets_lobbies", "Lobbies with a game running.", len(server.lobbies.lobbies)),
            ("soukets_channels", "Channels open.", len(server.hub)),
        ):
            yield GaugeMetricFamily(name, help, value=value)
        connections = CounterMetricFamily(
            "soukets_connections", "Connections accepted, by transport.", labels=["transport"]
        )
        for transport in sorted({*TRANSPORTS, *tally.connections}):
            connections.add_metric([transport], tally.connections.get(transport, 0))
        yield connections
        yield CounterMetricFamily(
            "soukets_frames_received", "Frames received from clients.", value=tally.frames_received
        )
        yield CounterMetricFamily(
            "soukets_frames_sent", "Frames written to clients.", value=tally.frames_sent
        )
        errors = CounterMetricFamily(
            "soukets_errors", "Error frames sent, by code.", labels=["code"]
        )
        for code, count in sorted(tally.errors.items()):
            errors.add_metric([code], count)
        yield errors
        games = CounterMetricFamily(
            "soukets_games", "Games ended, by game_over reason.", labels=["reason"]
        )
        for reason, count in sorted(tally.games.items()):
            games.add_metric([reason], count)
        yield games
        yield CounterMetricFamily(
            "soukets_slow_readers_cut",
            "Clients cut off for reading too slowly.",
            value=tally.slow_readers_cut,
        )
        engine = server.engine
        if engine is not None and hasattr(engine, "liveness"):  # the Redis engine
            yield GaugeMetricFamily(
                "soukets_engine_up", "1 while this node reaches Redis.", value=int(engine.up)
            )
            yield GaugeMetricFamily(
                "soukets_engine_nodes", "Nodes this node believes alive (itself included).",
                value=len(engine.liveness.alive | {engine.node}),
            )
            yield CounterMetricFamily(
                "soukets_engine_messages_lost",
                "Channel messages from other nodes that Redis dropped while this "
                "node was reconnecting.",
                value=engine.gaps.missed,
            )


def make_registry(server: Server, counter: HostCounterService) -> CollectorRegistry:
    """
    A registry of soukets' series and the process's own (CPU, memory, open
    files), for this server alone.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server, counter))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry

"""
What a server counts as it runs, with no I/O: plain integers, bumped on the
hot path by one addition and read only when someone asks (C{/metrics}
collects them on each scrape).
"""

from __future__ import annotations

import attrs


@attrs.define
class Tally:
    """
    The running totals of one server since it started.
    """

    frames_received: int = 0
    frames_sent: int = 0
    slow_readers_cut: int = 0
    connections: dict[str, int] = attrs.field(factory=dict)
    """Connections accepted, by transport (C{tcp}, C{websocket})."""
    errors: dict[str, int] = attrs.field(factory=dict)
    """Error frames sent, by code."""
    games: dict[str, int] = attrs.field(factory=dict)
    """Games ended, by C{game_over} reason."""

    def connected(self, transport: str) -> None:
        self.connections[transport] = self.connections.get(transport, 0) + 1

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def game_over(self, reason: str) -> None:
        self.games[reason] = self.games.get(reason, 0) + 1

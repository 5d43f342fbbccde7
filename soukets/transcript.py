"""
What a lobby has sent to everyone, with no I/O: kept so that a player who
takes its seat back, or a spectator who arrives late, can be told what it
needs to go on.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

MAX_ENTRIES = 1000
"""A lobby keeps at most this many of its last frames."""

# Not replayed from before the round under way: the players' comings and
# goings (they describe a moment, perhaps of the very player catching up),
# and past rounds' starts and moves (their results say it all).
_NOT_REPLAYED = frozenset({"away", "back", "left", "round", "moved"})


@attrs.define
class Transcript:
    """
    The frames a lobby sent to all its players, each with the time it was
    sent.
    """

    entries: list[tuple[float, Mapping[str, Any]]] = attrs.field(factory=list)
    dropped: int = 0  # entries let go of, from the start

    def add(self, when: float, payload: Mapping[str, Any]) -> None:
        self.entries.append((when, payload))
        if len(self.entries) > MAX_ENTRIES:
            excess = len(self.entries) - MAX_ENTRIES
            del self.entries[:excess]
            self.dropped += excess

    def mark(self) -> int:
        """
        Where the transcript is now: what is sent from here on is after
        this mark.
        """
        return self.dropped + len(self.entries)

    def current_round(self) -> tuple[int, tuple[float, Mapping[str, Any]] | None]:
        """
        The index and entry of the C{round} frame of the round under way,
        or C{(len, None)} when no round is waiting for moves.
        """
        for index in range(len(self.entries) - 1, -1, -1):
            kind = self.entries[index][1].get("type")
            if kind == "round":
                return index, self.entries[index]
            if kind in ("result", "game_over"):
                break
        return len(self.entries), None

    @property
    def round_number(self) -> int:
        """
        The number of the last round started (0 before the first).
        """
        for _, payload in reversed(self.entries):
            if payload.get("type") == "round":
                return int(payload.get("round", 0))
        return 0

    def catch_up(self, now: float, since: int | None) -> list[dict[str, Any]]:
        """
        What someone needs to go on at time C{now}: every frame sent to all
        after the L{mark} C{since} (L{None}: nothing missed) that is not
        part of the round under way, then that round's C{round} frame, its
        C{timeout} set to the seconds left, and the C{moved} frames sent
        since it.
        """
        start, current = self.current_round()
        frames: list[dict[str, Any]] = []
        if since is not None:
            first = max(0, since - self.dropped)
            for _, payload in self.entries[first:start]:
                if payload.get("type") not in _NOT_REPLAYED:
                    frames.append(dict(payload))
        if current is not None:
            began, payload = current
            left = max(0.0, float(payload.get("timeout", 0.0)) - (now - began))
            frames.append({**payload, "timeout": round(left, 3)})
            for _, later in self.entries[start + 1 :]:
                if later.get("type") == "moved":
                    frames.append(dict(later))
        return frames

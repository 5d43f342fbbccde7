"""
The matchmaking queue (the main lobby), with no I/O: players wait in
arrival order and leave it in groups of the lobby size.
"""

from __future__ import annotations

from typing import Generic, Hashable, Sequence, TypeVar

import attrs

T = TypeVar("T", bound=Hashable)


@attrs.define
class MatchQueue(Generic[T]):
    """
    Players waiting for a lobby, in arrival order.  Whenever C{size} of them
    are waiting, L{add} hands back the first C{size} as a group.
    """

    size: int
    _waiting: dict[T, None] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.size < 2:
            raise ValueError(f"a lobby needs at least 2 players, not {self.size}")

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, player: object) -> bool:
        return player in self._waiting

    def add(self, player: T) -> tuple[T, ...] | None:
        """
        Put C{player} at the end of the queue.

        @return: the group of C{size} players taken off the front of the
            queue if there are now enough of them, else L{None}.
        """
        if player in self._waiting:
            raise ValueError(f"{player!r} is already queued")
        self._waiting[player] = None
        if len(self._waiting) < self.size:
            return None
        group = tuple(self._waiting)[: self.size]
        for member in group:
            del self._waiting[member]
        return group

    def take(self, count: int) -> list[T]:
        """
        Take up to C{count} players off the front of the queue, in order.
        """
        taken = list(self._waiting)[:count]
        for player in taken:
            del self._waiting[player]
        return taken

    def restore(self, players: Sequence[T]) -> None:
        """
        Put C{players}, taken off the front by L{add}, back at the front, in
        their order (a group that could not form).
        """
        waiting = dict.fromkeys(players)
        waiting.update(self._waiting)
        self._waiting = waiting

    def remove(self, player: T) -> bool:
        """
        Take C{player} out of the queue; return whether it was there.
        """
        if player not in self._waiting:
            return False
        del self._waiting[player]
        return True

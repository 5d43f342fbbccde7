"""
The games a lobby can run, found through the ``soukets.games`` entry point
group.

Each entry point names a game factory: a callable taking an
L{IGameContext<soukets.games.base.IGameContext>} and returning an
L{IGame<soukets.games.base.IGame>}.  soukets registers its own games (``rps``
and ``chat``) the same way a third party would; see README.rst.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable

from soukets.games.base import IGame, IGameContext

GameFactory = Callable[[IGameContext], IGame]

ENTRY_POINT_GROUP = "soukets.games"

# soukets' own games are always there, installed or run from a checkout
# (whose entry points are not registered), whatever else is installed.
_BUILTIN = {
    "chat": "soukets.games.chat:Chat",
    "rps": "soukets.games.rps:RockPaperScissors",
}


def _entry_points() -> dict[str, Callable[[], GameFactory]]:
    from importlib.metadata import EntryPoint

    found = {
        name: EntryPoint(name, value, ENTRY_POINT_GROUP).load
        for name, value in _BUILTIN.items()
    }
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.load)
    return found


def available_games() -> list[str]:
    """
    The names of every registered game, sorted.
    """
    return sorted(_entry_points())


def load_game(name: str) -> GameFactory:
    """
    The factory of the game registered as C{name}.

    @raise KeyError: no game is registered under that name.
    """
    return _entry_points()[name]()

"""
Tests for C{--local} (L{soukets.client.local}) and L{soukets.client.app}:
the whole client against an in-process server and a computer player, on a
L{task.Clock}.
"""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from soukets.client.app import ClientApp
from soukets.client.local import frequency_move, local_settings, play_locally, random_move
from soukets.client.model import PlayerView


class FakeFace:
    def __init__(self, app: ClientApp) -> None:
        self.app = app
        self.lines: list[str] = []
        self.restored = False

    def show(self, text: str) -> None:
        self.lines.append(text)

    def restore(self) -> None:
        self.restored = True

    def redraw(self) -> None:
        pass

    def close(self) -> None:
        self.app.face_closed()


class StrategyTests(SynchronousTestCase):
    def test_frequency_beats_favourite(self) -> None:
        rng = random.Random(1)
        self.assertEqual(frequency_move(["rock", "rock", "paper"], rng), "paper")
        self.assertEqual(frequency_move(["scissors"], rng), "rock")
        self.assertIn(frequency_move([], rng), ("rock", "paper", "scissors"))

    def test_random(self) -> None:
        rng = random.Random(2)
        self.assertEqual({random_move([], rng) for _ in range(100)}, {"rock", "paper", "scissors"})


class LocalGameTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.view = PlayerView(self.clock, lambda text: self.app.show(text), name="alice",
                               server="soukets (local)")
        self.app = ClientApp(self.clock, self.view)
        self.face = FakeFace(self.app)
        self.app.face = self.face
        self.codes: list[int] = []
        self.app.done.addCallback(self.codes.append)

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds * 10)):
            self.clock.advance(0.1)

    def start(self, timeout: float = 10.0, rounds: int = 1) -> None:
        play_locally(self.app, self.clock, local_settings(timeout, rounds), "random", random.Random(7))
        self.run_for(0.1)

    def test_game_against_the_computer(self) -> None:
        self.start(rounds=2)
        self.assertEqual(self.face.lines[:3], [
            "connected to soukets (local) as alice — a lobby is forming…",
            f"matched in lobby {self.view.lobby.removeprefix('lobby:')[:4]}… with computer",
            "round 1 — your move [r]ock [p]aper [s]cissors — 10 s",
        ])
        for _ in range(2):
            self.app.typed("r")
            self.run_for(3)
        results = [line for line in self.face.lines if line.startswith("round ") and ":" in line]
        self.assertEqual(len(results), 2)
        for line in results:
            self.assertRegex(line, r"^round \d: computer played (rock|paper|scissors) — (you win|you lose|draw)$")
        self.assertRegex(self.face.lines[-1], r"^game over — .*: (alice|computer) \d, (alice|computer) \d\. Play again\? \[y/n\]$")
        # Again, then quit.
        self.app.typed("y")
        self.run_for(0.5)
        self.assertEqual(self.face.lines[-1], "round 1 — your move [r]ock [p]aper [s]cissors — 10 s")
        self.app.typed("/quit")
        self.assertEqual(self.codes, [0])
        self.assertTrue(self.face.restored)

    def test_timeout(self) -> None:
        self.start(timeout=5)
        self.run_for(6)
        self.assertIn("you did not play in time", self.face.lines)
        self.assertIn("round 1: computer played", [l[:24] for l in self.face.lines])

    def test_input_ended_mid_game(self) -> None:
        """
        When standard input ends mid-game, the client finishes the game
        first, then leaves.
        """
        self.start()
        self.app.typed("s")
        self.app.input_ended()
        self.assertEqual(self.codes, [])
        self.run_for(3)
        self.assertEqual(self.codes, [0])

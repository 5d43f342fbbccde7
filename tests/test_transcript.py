"""
Tests for L{soukets.transcript}: what a lobby keeps of what it sent, and
what it tells a player taking its seat back or a spectator arriving late.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from soukets.transcript import MAX_ENTRIES, Transcript


def round_frame(number: int, timeout: float = 10.0) -> dict:
    return {"type": "round", "round": number, "timeout": timeout}


class BoundTests(SynchronousTestCase):
    """
    A transcript keeps at most L{MAX_ENTRIES} frames, and its marks stay
    true across what it let go of.
    """

    def test_bounded(self) -> None:
        transcript = Transcript()
        for n in range(MAX_ENTRIES + 250):
            transcript.add(float(n), {"type": "chat", "n": n})
        self.assertEqual(len(transcript.entries), MAX_ENTRIES)
        self.assertEqual(transcript.dropped, 250)
        self.assertEqual(transcript.entries[0][1]["n"], 250)
        self.assertEqual(transcript.mark(), MAX_ENTRIES + 250)

    def test_mark_across_drops(self) -> None:
        """
        A mark taken before frames were let go of still names the frames
        sent after it, as long as they are kept.
        """
        transcript = Transcript()
        for n in range(10):
            transcript.add(0.0, {"type": "chat", "n": n})
        since = transcript.mark()
        for n in range(10, MAX_ENTRIES + 5):
            transcript.add(0.0, {"type": "chat", "n": n})
        self.assertEqual(transcript.dropped, 5)
        caught_up = transcript.catch_up(0.0, since)
        self.assertEqual([f["n"] for f in caught_up], list(range(10, MAX_ENTRIES + 5)))

    def test_mark_before_what_was_kept(self) -> None:
        """
        Frames after the mark that were let go of are lost: what is kept
        is told, in order, and nothing more.
        """
        transcript = Transcript()
        since = transcript.mark()
        for n in range(MAX_ENTRIES + 3):
            transcript.add(0.0, {"type": "chat", "n": n})
        caught_up = transcript.catch_up(0.0, since)
        self.assertEqual([f["n"] for f in caught_up], list(range(3, MAX_ENTRIES + 3)))


class RoundTests(SynchronousTestCase):
    """
    The round under way, and its number.
    """

    def test_no_round(self) -> None:
        transcript = Transcript()
        self.assertEqual(transcript.current_round(), (0, None))
        self.assertEqual(transcript.round_number, 0)
        transcript.add(1.0, {"type": "players"})
        self.assertEqual(transcript.current_round(), (1, None))

    def test_round_under_way(self) -> None:
        transcript = Transcript()
        transcript.add(1.0, {"type": "players"})
        transcript.add(2.0, round_frame(1))
        transcript.add(3.0, {"type": "moved", "client": "a"})
        self.assertEqual(transcript.current_round(), (1, (2.0, round_frame(1))))
        self.assertEqual(transcript.round_number, 1)

    def test_round_over(self) -> None:
        """
        Once a round has its result (or the game is over), no round waits
        for moves; its number is still the last one started.
        """
        for end in ("result", "game_over"):
            transcript = Transcript()
            transcript.add(1.0, round_frame(4))
            transcript.add(2.0, {"type": end})
            self.assertEqual(transcript.current_round(), (2, None))
            self.assertEqual(transcript.round_number, 4)


class CatchUpTests(SynchronousTestCase):
    """
    What someone needs to go on.
    """

    def game(self) -> Transcript:
        transcript = Transcript()
        transcript.add(0.0, {"type": "players", "players": ["a", "b"]})
        transcript.add(0.0, round_frame(1))
        transcript.add(1.0, {"type": "moved", "client": "a"})
        transcript.add(2.0, {"type": "result", "round": 1})
        transcript.add(2.0, {"type": "away", "client": "b"})
        transcript.add(3.0, round_frame(2))
        transcript.add(4.5, {"type": "moved", "client": "a"})
        transcript.add(5.0, {"type": "back", "client": "b"})
        return transcript

    def test_from_a_mark(self) -> None:
        """
        After the mark: every frame before the round under way but past
        rounds' starts and moves and the comings and goings; then that
        round, with the seconds left, and its moves so far.
        """
        caught_up = self.game().catch_up(7.25, since=0)
        self.assertEqual(
            caught_up,
            [
                {"type": "players", "players": ["a", "b"]},
                {"type": "result", "round": 1},
                {"type": "round", "round": 2, "timeout": 5.75},
                {"type": "moved", "client": "a"},
            ],
        )

    def test_nothing_missed(self) -> None:
        """
        With no mark (a spectator), only the round under way.
        """
        self.assertEqual(
            self.game().catch_up(3.0, since=None),
            [{"type": "round", "round": 2, "timeout": 10.0}, {"type": "moved", "client": "a"}],
        )

    def test_late(self) -> None:
        """
        The seconds left never go below zero, however late the catch-up.
        """
        caught_up = self.game().catch_up(60.0, since=None)
        self.assertEqual(caught_up[0]["timeout"], 0.0)

    def test_copies(self) -> None:
        """
        What is handed out is a copy: changing it changes nothing kept.
        """
        transcript = self.game()
        for frame in transcript.catch_up(3.0, since=0):
            frame["type"] = "changed"
        self.assertEqual(transcript.catch_up(3.0, since=0)[0]["type"], "players")
        self.assertEqual(transcript.entries[5][1]["timeout"], 10.0)

    def test_since_now(self) -> None:
        """
        A mark taken now: nothing before the round under way is told again.
        """
        transcript = self.game()
        since = transcript.mark()
        self.assertEqual(
            [f["type"] for f in transcript.catch_up(5.0, since)], ["round", "moved"]
        )

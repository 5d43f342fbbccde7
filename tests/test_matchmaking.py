"""
Tests for L{soukets.matchmaking.MatchQueue}.
"""

from twisted.trial.unittest import SynchronousTestCase

from soukets.matchmaking import MatchQueue


class MatchQueueTests(SynchronousTestCase):
    def test_groups_in_arrival_order(self) -> None:
        queue: MatchQueue[str] = MatchQueue(3)
        self.assertIsNone(queue.add("a"))
        self.assertIsNone(queue.add("b"))
        self.assertEqual(len(queue), 2)
        self.assertEqual(queue.add("c"), ("a", "b", "c"))
        self.assertEqual(len(queue), 0)

    def test_remove(self) -> None:
        queue: MatchQueue[str] = MatchQueue(2)
        queue.add("a")
        self.assertTrue(queue.remove("a"))
        self.assertFalse(queue.remove("a"))
        self.assertNotIn("a", queue)
        queue.add("b")
        self.assertEqual(queue.add("c"), ("b", "c"))

    def test_twice(self) -> None:
        queue: MatchQueue[str] = MatchQueue(2)
        queue.add("a")
        self.assertRaises(ValueError, queue.add, "a")

    def test_size_at_least_two(self) -> None:
        self.assertRaises(ValueError, MatchQueue, 1)

"""
Ids that must be unguessable are: lobby ids (and, as they come, resume
tokens) are drawn from C{os.urandom}, as C{secrets}' are, and many of them
look like random bits, which sequential, time-based or low-entropy ids do
not.
"""

from __future__ import annotations

import base64
import os
from unittest import mock

from twisted.trial.unittest import SynchronousTestCase

from soukets.hub import LOBBY_PREFIX
from soukets.lobby import LOBBY_ID_BYTES, new_lobby_id

from tests.support import Harness

SAMPLE = 256


def random_bits(ids: list[str], prefix: str) -> list[bytes]:
    """
    The bytes each id carries after C{prefix} (URL-safe base64).
    """
    raw = []
    for text in ids:
        assert text.startswith(prefix), text
        body = text[len(prefix):]
        raw.append(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return raw


class UnguessableMixin:
    def assertUnguessable(self, ids: list[str], prefix: str, size: int) -> None:
        self.assertEqual(len(set(ids)), len(ids))
        raw = random_bits(ids, prefix)
        self.assertTrue(all(len(r) == size for r in raw), "too few bits")
        # Not in order, as counters and clocks are.
        self.assertNotEqual(ids, sorted(ids))
        self.assertNotEqual(ids, sorted(ids, reverse=True))
        # No long shared prefix between consecutive ids.
        for first, second in zip(raw, raw[1:]):
            shared = 0
            while shared < size and first[shared] == second[shared]:
                shared += 1
            self.assertLess(shared, 3, (first.hex(), second.hex()))
        # Every bit is set in about half of the ids (256 samples: a fair
        # bit lands outside 25-75 % with odds below 1e-14).
        for bit in range(size * 8):
            ones = sum((r[bit // 8] >> (bit % 8)) & 1 for r in raw)
            self.assertTrue(0.25 * len(raw) < ones < 0.75 * len(raw), f"bit {bit}: {ones}")


class LobbyIdTests(UnguessableMixin, SynchronousTestCase):
    def test_drawn_from_urandom(self) -> None:
        """
        A lobby id is C{LOBBY_ID_BYTES} bytes of C{os.urandom} (the source
        of C{secrets}), in URL-safe base64 without padding, as
        C{secrets.token_urlsafe} writes them.
        """
        drawn = bytes(range(250, 256)) + bytes(range(10))
        with mock.patch.object(os, "urandom", return_value=drawn) as urandom:
            made = new_lobby_id()
        urandom.assert_called_once_with(LOBBY_ID_BYTES)
        # (These bytes encode with both URL-safe characters and padding.)
        self.assertEqual(made, LOBBY_PREFIX + "-vv8_f7_AAECAwQFBgcICQ")
        self.assertEqual(base64.urlsafe_b64decode("-vv8_f7_AAECAwQFBgcICQ=="), drawn)
        self.assertGreaterEqual(LOBBY_ID_BYTES * 8, 128)

    def test_lobbies_formed(self) -> None:
        """
        The ids of the lobbies a server forms, one after the other, look
        like independent random bits.
        """
        h = Harness()
        ids = []
        for _ in range(SAMPLE):
            a, _ = h.connect(), h.connect()
            ids.append([b for _, b in h.frames(a) if b["type"] == "matched"][0]["channel"])
        self.assertUnguessable(ids, LOBBY_PREFIX, LOBBY_ID_BYTES)

    def test_would_catch_weak_ids(self) -> None:
        """
        The check itself fails for sequential, time-based and low-entropy
        ids, so it can be trusted to catch them.
        """
        import time

        weak = {
            "sequential": [i.to_bytes(16, "big") for i in range(1, SAMPLE + 1)],
            "time-based": [int(time.time() * 1e6 + i).to_bytes(16, "big") for i in range(SAMPLE)],
            "low entropy": [os.urandom(4) + bytes(12) for _ in range(SAMPLE)],
        }
        for kind, raw in weak.items():
            ids = [LOBBY_PREFIX + base64.urlsafe_b64encode(r).decode().rstrip("=") for r in raw]
            self.assertRaises(
                self.failureException, self.assertUnguessable, ids, LOBBY_PREFIX, 16
            )

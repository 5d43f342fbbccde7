"""
The daemon's service (L{soukets.service}): what it sets up when it starts.
"""

from __future__ import annotations

import gc
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from soukets.options import Options
from soukets.service import GC_THRESHOLDS, make_service


class GarbageCollectorTests(TestCase):
    def test_tuned_on_start(self) -> None:
        """
        A starting daemon collects cyclic garbage at its own thresholds and
        leaves what start-up made out of later collections.
        """
        from soukets import logs

        self.addCleanup(setattr, logs, "_lowest", logs._lowest)
        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        self.addCleanup(gc.unfreeze)
        options = Options()
        options.parseOptions([
            "--listen", "tcp:0:interface=127.0.0.1", "--no-web",
            "--counter-file", str(Path(self.mktemp()) / "clients.json"),
        ])
        service = make_service(options, reactor)
        self.assertEqual(gc.get_threshold(), before)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(gc.get_threshold(), GC_THRESHOLDS)
        self.assertGreater(gc.get_freeze_count(), 0)

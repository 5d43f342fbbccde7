"""
The daemon's service (L{soukets.service}): what it sets up when it starts.
"""

from __future__ import annotations

import gc
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from soukets.options import Options
from soukets.service import make_service


class GarbageCollectorTests(TestCase):
    def test_tuned_on_start(self) -> None:
        """
        A starting daemon leaves what start-up made out of later
        collections of cyclic garbage.
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
        gc.unfreeze()
        self.assertEqual(gc.get_freeze_count(), 0)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertGreater(gc.get_freeze_count(), 1000)
        self.assertEqual(gc.get_threshold(), before)

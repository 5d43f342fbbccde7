"""
The daemon's service (L{soukets.service}): what it sets up when it starts.
"""

from __future__ import annotations

import gc
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from soukets.options import Options
from soukets.service import kernel_backlog_cap, make_service

from tests.daemon import Daemon


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


class BacklogCapTests(TestCase):
    def test_read(self) -> None:
        """
        The kernel's cap on a listening socket's queue is read from its file;
        L{None} if the file is missing or holds no number.
        """
        path = Path(self.mktemp())
        self.assertIsNone(kernel_backlog_cap(path))
        path.write_text("128\n")
        self.assertEqual(kernel_backlog_cap(path), 128)
        path.write_text("many\n")
        self.assertIsNone(kernel_backlog_cap(path))

    def test_warned(self) -> None:
        """
        A daemon asked for a backlog over the kernel's cap says so once, for
        that endpoint; one within it (the test daemon's 4,096 here) does
        not.
        """
        cap = kernel_backlog_cap()
        self.assertIsNotNone(cap, "net.core.somaxconn cannot be read")
        wide = f"tcp:0:interface=127.0.0.1:backlog={cap + 1}"
        daemon = Daemon(self.mktemp(), "--listen", wide)
        self.addCleanup(daemon.stop)
        daemon.wait_for(f"--listen {wide}: the kernel queues at most {cap} connections")
        daemon.stop()
        self.assertEqual(daemon.output.count("net.core.somaxconn"), 2)  # the warning's two mentions
        self.assertEqual(daemon.output.count("the kernel queues at most"), 1)

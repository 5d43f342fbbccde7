"""
Tests for L{soukets.kernel}: the cap on a listening socket's queue, and the
descriptor table sized at start; each also on a real daemon.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import TestCase

from soukets.kernel import kernel_backlog_cap

from tests.daemon import CHECKOUT, Daemon, environment

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


HARD_LIMIT = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def fd_table(script: str, limit: int | None = None) -> dict:
    """
    Run C{script} in a fresh Python (this checkout's soukets), with the
    soft limit of descriptors at C{limit} if given, and return what it
    printed as JSON.
    """
    def lower() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, HARD_LIMIT))

    prelude = (
        "import json, os\n"
        "from soukets.kernel import reserve_descriptors\n"
        "def size():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('FDSize:'): return int(line.split()[1])\n"
        "def count(): return len(os.listdir('/proc/self/fd'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + script],
        env={**environment(), "PYTHONPATH": str(CHECKOUT)},
        preexec_fn=lower, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class DescriptorTableTests(TestCase):
    def test_grown_once(self) -> None:
        """
        The table is grown to the count asked for, and no descriptor is
        left open.
        """
        figures = fd_table(
            "before, open_before = size(), count()\n"
            "reserved = reserve_descriptors(3000)\n"
            "print(json.dumps([before, reserved, size(), open_before, count()]))\n",
            limit=min(8192, HARD_LIMIT),
        )
        before, reserved, after, open_before, open_after = figures
        wanted = min(3000, HARD_LIMIT)
        self.assertLess(before, wanted)
        self.assertEqual(reserved, wanted)
        self.assertGreaterEqual(after, wanted)
        self.assertEqual(open_after, open_before)

    def test_within_the_limit(self) -> None:
        """
        Never more than the soft limit of descriptors, and no error there.
        """
        reserved, after = fd_table(
            "reserved = reserve_descriptors(100000)\nprint(json.dumps([reserved, size()]))\n",
            limit=512,
        )
        self.assertEqual(reserved, 512)
        self.assertGreaterEqual(after, 512)

    def test_daemon(self) -> None:
        """
        A daemon's table holds its clients' descriptors from the start.
        """
        daemon = Daemon(self.mktemp(), "--max-clients", "3000")
        self.addCleanup(daemon.stop)
        with open(f"/proc/{daemon.process.pid}/status") as status:
            [size] = [int(line.split()[1]) for line in status if line.startswith("FDSize:")]
        # (The test daemon's soft limit is raised to its hard one, 65,536 at most.)
        self.assertGreaterEqual(size, min(3000 + 256, HARD_LIMIT))

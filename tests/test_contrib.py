"""
Tests for the systemd units in contrib/: systemd accepts them, and the
daemon accepts the options they start it with.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from soukets.options import Options
from tests.daemon import CHECKOUT

UNITS = ["soukets.service", "soukets@.service"]


def exec_start(unit: str) -> list[str]:
    text = (CHECKOUT / "contrib" / unit).read_text().replace("\\\n", " ")
    [line] = re.findall(r"^ExecStart=(.*)$", text, re.M)
    return shlex.split(line)


class SystemdUnitTests(SynchronousTestCase):
    def test_verify(self) -> None:
        """
        systemd-analyze verify finds nothing to say about the units (with
        the twistd path pointed at this environment's).
        """
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is needed: apt-get install systemd")
        twistd = str(Path(sys.executable).parent / "twistd")
        directory = Path(self.mktemp())
        directory.mkdir()
        for unit in UNITS:
            text = (CHECKOUT / "contrib" / unit).read_text()
            name = unit.replace("@.", "@7777.")
            (directory / name).write_text(text.replace("/opt/soukets/bin/twistd", twistd))
            done = subprocess.run(
                [analyze, "verify", str(directory / name)],
                capture_output=True, text=True, timeout=60,
            )
            said = [
                line for line in (done.stdout + done.stderr).splitlines()
                if name in line or "soukets" in line
            ]
            self.assertEqual((done.returncode, said), (0, []), unit)

    def test_options_accepted(self) -> None:
        """
        The command line each unit runs is one the daemon accepts.
        """
        for unit in UNITS:
            argv = exec_start(unit)
            self.assertEqual(argv[1:4], ["--nodaemon", "--pidfile=", "soukets"])
            args = [
                a.replace("%i", "7778")
                .replace("/run/soukets/clients.json", self.mktemp() + "/c.json")
                for a in argv[4:]
                if a not in ("$SOUKETS_OPTIONS", "$SOUKETS_WEB")
            ]
            if "$SOUKETS_WEB" in argv:
                args.append("--no-web")  # the unit's default
            options = Options()
            options.parseOptions(args + ["--game", "chat"])
            self.assertIn("backlog=511", options["listen"][0])

"""
The documentation builds without a warning (HTML and man pages), and the
architecture diagram is what docs/architecture.py draws.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import CHECKOUT, environment

DOCS = CHECKOUT / "docs"


class DocsTests(SynchronousTestCase):
    def build(self, builder: str) -> str:
        out = self.mktemp()
        done = subprocess.run(
            [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
             str(DOCS), out],
            capture_output=True, text=True, env=environment(), timeout=300,
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return out

    def test_html(self) -> None:
        from pathlib import Path

        out = Path(self.build("html"))
        operations = (out / "operations.html").read_text()
        # The option list is generated from the daemon's own options.
        from soukets.options import Options

        for name, *_ in Options.optParameters:
            self.assertIn(f"--{name}", operations)
        for name in ("--web", "--web-origin", "--listen", "--log-level", "--no-web"):
            self.assertIn(name, operations)

    def test_man_pages(self) -> None:
        from pathlib import Path

        out = Path(self.build("man"))
        page = (out / "soukets.1").read_text()
        self.assertIn("\\-\\-taille\\-lobby", page)
        self.assertIn("\\-\\-tls", (out / "soukets-client.1").read_text())
        # pip installs the committed pages (share/man/man1): they must be
        # what the sources make.
        for name in ("soukets.1", "soukets-client.1"):
            self.assertEqual(
                (DOCS / "man" / name).read_text(), (out / name).read_text(),
                f"rebuild: python -m sphinx -b man docs /tmp/man && cp /tmp/man/{name} docs/man/",
            )

    def test_architecture_diagram_current(self) -> None:
        done = subprocess.run(
            [sys.executable, str(DOCS / "architecture.py")],
            capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(done.stdout, (DOCS / "architecture.svg").read_text(),
                         "run: python docs/architecture.py > docs/architecture.svg")

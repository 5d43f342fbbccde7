"""
A plain install has everything soukets imports: every third-party module
the package imports belongs to a distribution that setup.cfg's
install_requires asks for, directly or through what those require.  (The
test extras must not hide a missing dependency, as they once did.)
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib import metadata

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import CHECKOUT


def requirement(text: str) -> tuple[str, set[str], str]:
    """
    A requirement's distribution name (normalised), extras and marker.
    """
    spec, _, marker = text.partition(";")
    found = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[([^\]]*)\])?", spec)
    assert found, text
    name = re.sub(r"[-_.]+", "-", found.group(1)).lower()
    extras = {e.strip() for e in (found.group(3) or "").split(",") if e.strip()}
    return name, extras, marker


def closure(requirements: list[str]) -> set[str]:
    """
    Every distribution the requirements bring, with the extras asked for.
    """
    seen: set[str] = set()
    todo = [requirement(r)[:2] for r in requirements]
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub, sub_extras, marker = requirement(text)
            wanted = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if wanted and not set(wanted) & extras:
                continue
            todo.append((sub, sub_extras))
    return seen


class InstallRequiresTests(SynchronousTestCase):
    def test_imports_are_installed_by_a_plain_install(self) -> None:
        config = configparser.ConfigParser()
        config.read(CHECKOUT / "setup.cfg")
        declared = [
            line.strip() for line in config["options"]["install_requires"].splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        brought = closure(declared)
        owners = metadata.packages_distributions()
        missing = {}
        for path in (CHECKOUT / "soukets").rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("soukets", "twisted"):
                        continue
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, [top])}
                    if not dists & brought:
                        missing[top] = str(path.relative_to(CHECKOUT))
        self.assertEqual(missing, {}, "imported, but not brought by install_requires")

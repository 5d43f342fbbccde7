"""
Sphinx configuration for soukets' documentation:
``python -m sphinx -W -b html docs docs/_build/html`` (and ``-b man`` for the
man pages).  The option lists are generated from the programs' own
``usage.Options``, so they cannot drift from ``--help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import soukets  # noqa: E402

project = "soukets"
author = "the soukets authors"
copyright = "2026, the soukets authors"
release = version = soukets.__version__
# The man pages' date line: the version, so that a build is reproducible.
today = f"soukets {release}"
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "none"
# "--option" stays two hyphens.
smartquotes = False
man_pages = [
    ("man/soukets", "soukets", "a real-time channel server with matchmaking and games", [author], 1),
    ("man/soukets-client", "soukets-client", "play soukets games and chat from a terminal", [author], 1),
]


def _options(spec: str):
    from soukets.client.cli import ClientOptions
    from soukets.options import Options

    return {"soukets": Options, "soukets-client": ClientOptions}[spec]()


class OptionsDirective(Directive):
    """
    ``.. soukets-options:: soukets`` (or ``soukets-client``): every option
    of that program, with its help and default, from its ``usage.Options``.
    """

    required_arguments = 1
    has_content = False
    option_spec = {"exclude": directives.unchanged}

    def run(self):
        options = _options(self.arguments[0])
        excluded = set((self.options.get("exclude") or "").split())
        items = nodes.definition_list()
        seen = set()
        for long, short, takes, default, text in _describe(options):
            if long in excluded or long in seen:
                continue
            seen.add(long)
            term = f"--{long}" + (f" {long.upper().replace('-', '_')}" if takes else "")
            if short:
                term = f"-{short}, " + term
            body = text or ""
            if default not in (None, "", []) and "[default" not in body:
                body += f" [default: {default}]"
            item = nodes.definition_list_item()
            item += nodes.term(text=term)
            definition = nodes.definition()
            definition += nodes.paragraph(text=" ".join(body.split()))
            item += definition
            items += item
        return [items]


def _describe(options):
    for name, short, default, text, *_ in getattr(options, "optParameters", []):
        yield name, short, True, default, text
    for name, short, text in getattr(options, "optFlags", []):
        yield name, short, False, None, text
    for attr in sorted(dir(options)):
        if attr.startswith("opt_"):
            method = getattr(options, attr)
            long = attr[4:].replace("_", "-")
            takes = method.__code__.co_argcount > 1
            yield long, None, takes, None, " ".join((method.__doc__ or "").split())


def setup(app):
    app.add_directive("soukets-options", OptionsDirective)
    return {"parallel_read_safe": True}

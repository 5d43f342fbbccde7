"""
The protocol reference's examples run: every code block of
C{docs/protocol.rst} named C{exchange-…} is played against a real daemon
(started with the options on its first line), and every frame the server
sends must match the reference's (client and lobby ids by variable, C{"*"}
for any value).  A reference that drifts from the server fails here.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import CHECKOUT, Client, Daemon
from tests.redis import RedisServer


def redis_in(options: list[str]) -> bool:
    return any(option.startswith("redis://") for option in options)

REFERENCE = CHECKOUT / "docs" / "protocol.rst"
_BLOCK = re.compile(
    r"^\.\. code-block:: text\n   :name: (exchange-[\w-]+)\n\n((?:   .*\n|\n)+)", re.M
)
_VARIABLE = re.compile(r"\$[a-z]\w*")


def exchanges() -> dict[str, list[str]]:
    """
    The reference's exchanges by name, each a list of lines.
    """
    text = REFERENCE.read_text()
    found = {}
    for name, body in _BLOCK.findall(text):
        found[name] = [line[3:] for line in body.splitlines() if line.strip()]
    return found


class Matcher:
    """
    Compares frames with the reference's, binding C{$variables}.
    """

    def __init__(self) -> None:
        self.bound: dict[str, Any] = {}

    def substitute(self, text: str) -> str:
        return _VARIABLE.sub(lambda m: str(self.bound[m.group()]), text)

    def match(self, expected: Any, actual: Any, where: str) -> None:
        if expected == "*":
            return
        if isinstance(expected, str) and _VARIABLE.fullmatch(expected):
            if expected in self.bound:
                assert actual == self.bound[expected], f"{where}: {expected} is {self.bound[expected]!r}, got {actual!r}"
            else:
                self.bound[expected] = actual
            return
        if isinstance(expected, dict):
            assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
            keys = {self.substitute(k) if k.startswith("$") else k: v for k, v in expected.items()}
            assert set(keys) == set(actual), f"{where}: keys {sorted(keys)} != {sorted(actual)}"
            for key, value in keys.items():
                self.match(value, actual[key], f"{where}.{key}")
            return
        if isinstance(expected, list):
            assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {expected!r} != {actual!r}"
            for index, (e, a) in enumerate(zip(expected, actual)):
                self.match(e, a, f"{where}[{index}]")
            return
        assert expected == actual and type(expected) is type(actual), f"{where}: {expected!r} != {actual!r}"


class ReferenceExampleTests(SynchronousTestCase):
    def test_every_example_is_read(self) -> None:
        """
        No exchange escapes the reader (a block it could not parse would
        silently go unchecked).
        """
        named = REFERENCE.read_text().count(":name: exchange-")
        self.assertEqual(len(exchanges()), named)
        self.assertGreaterEqual(named, 6)

    def test_examples_run(self) -> None:
        for name, lines in exchanges().items():
            self.play(name, lines)

    def play(self, name: str, lines: list[str]) -> None:
        assert lines[0].startswith("# "), f"{name}: the first line gives the options"
        options = shlex.split(lines[0][2:])
        if "redis://" in options:  # (a Redis of the test's own)
            redis = RedisServer(self.mktemp())
            self.addCleanup(redis.stop)
            options[options.index("redis://")] = redis.url
        daemon = Daemon(self.mktemp(), *options)
        self.addCleanup(daemon.stop)
        if redis_in(options):
            daemon.wait_for("engine: node")
        clients: dict[str, Client] = {}
        matcher = Matcher()
        for number, line in enumerate(lines[1:], start=2):
            who, arrow, frame = re.match(r"(\w+)([<>!]) (.*)$", line).groups()
            where = f"{name}, line {number} ({line})"
            if who not in clients:
                clients[who] = daemon.client()
                self.addCleanup(clients[who].close)
            client = clients[who]
            if arrow == "!":  # "a! close": the client's connection ends
                assert frame == "close", where
                client.close()
                continue
            if arrow == ">":
                client.send(matcher.substitute(frame))
                continue
            channel, _, document = frame.partition(";")
            got_channel, got = client.read()
            matcher.match(channel, got_channel, where + " channel")
            matcher.match(json.loads(document), got, where)

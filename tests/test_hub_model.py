"""
The hub against a plain model, by a hypothesis state machine: whatever
the order of joins, parts, publishes, flushes and cuts, every member
receives, in order, exactly the messages published while it was a member
(runs of messages shared between receivers included).
"""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from soukets.hub import ChannelHub

from tests.support import Recorder, parse

NAMES = ("a", "b", "c", "d")
CHANNELS = ("x", "y")


class HubMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.hub = ChannelHub()
        self.clients = {n: Recorder(n) for n in NAMES}
        self.members: dict[str, set[str]] = {c: set() for c in CHANNELS}
        self.expected: dict[str, list] = {n: [] for n in NAMES}
        self.got: dict[str, list] = {n: [] for n in NAMES}
        self.serial = 0

    @rule(name=st.sampled_from(NAMES), channel=st.sampled_from(CHANNELS))
    def join(self, name: str, channel: str) -> None:
        self.hub.subscribe(channel, self.clients[name])
        self.members[channel].add(name)

    @rule(name=st.sampled_from(NAMES), channel=st.sampled_from(CHANNELS))
    def part(self, name: str, channel: str) -> None:
        if name in self.members[channel]:
            self.hub.unsubscribe(channel, self.clients[name])
            self.members[channel].discard(name)

    @rule(name=st.sampled_from(NAMES), channel=st.sampled_from(CHANNELS), compact=st.booleans())
    def publish(self, name: str, channel: str, compact: bool) -> None:
        self.serial += 1
        data = [self.serial, name]
        self.hub.publish(
            channel, self.clients[name], data,
            json.dumps(data, separators=(",", ":")) if compact else None,
        )
        for member in self.members[channel] - {name}:
            self.expected[member].append((channel, self.serial))

    @rule(name=st.sampled_from(NAMES))
    def flush(self, name: str) -> None:
        for channel, body in parse(self.clients[name].received.take()):
            self.got[name].append((channel, body["data"][0]))

    @rule(name=st.sampled_from(NAMES))
    def cut(self, name: str) -> None:
        """
        The client goes away: everything owed is dropped with it.
        """
        self.flush(name)
        self.hub.drop(self.clients[name])
        self.clients[name].received.clear()
        for members in self.members.values():
            members.discard(name)

    @invariant()
    def received_what_was_published_while_member(self) -> None:
        for name in NAMES:
            got = self.got[name]
            assert got == self.expected[name][: len(got)], (name, got, self.expected[name])

    def teardown(self) -> None:
        for name in NAMES:
            self.flush(name)
            assert self.got[name] == self.expected[name], name


class HubModelTests(SynchronousTestCase):
    def test_hub_against_model(self) -> None:
        run_state_machine_as_test(
            HubMachine,
            settings=settings(max_examples=300, stateful_step_count=40, deadline=None),
        )

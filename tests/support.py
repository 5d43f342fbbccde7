"""
Helpers shared by the tests: sans-IO clients that record what they are
sent, and a server wired to a L{task.Clock}.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from soukets.outbox import Outbox, Owed
from soukets.server import Server, ServerSettings
from soukets.session import Session


def parse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """
    Split server output into (channel, JSON object) pairs, checking that
    every frame is one compact JSON line.
    """
    frames = []
    for line in data.decode("utf-8").splitlines():
        channel, _, document = line.partition(";")
        body = json.loads(document)
        assert json.dumps(body, separators=(",", ":"), ensure_ascii=False) == document
        frames.append((channel, body))
    return frames


@attrs.define(eq=False)
class Recorder:
    """
    Something that is sent frames (a hub subscriber, a lobby player).
    """

    client_id: str
    name: str = ""
    received: Outbox = attrs.field(factory=Outbox)
    connected: bool = True

    def send(self, data: Owed) -> None:
        self.received.add(data)

    def frames(self) -> list[tuple[str, dict[str, Any]]]:
        """
        Every frame received since the last call.
        """
        return parse(self.received.take())


def synchronous(f: Any) -> Deferred[Any]:
    """
    Run a blocking function at once: a counter runner for tests.
    """
    return maybeDeferred(f)


@attrs.define
class Harness:
    """
    A server on a L{Clock}, with sessions whose output is recorded.
    """

    settings: ServerSettings = attrs.field(factory=ServerSettings)
    clock: Clock = attrs.field(factory=Clock)
    server: Server = attrs.field(default=None)  # made from the settings if not given
    outputs: dict[Session, Outbox] = attrs.field(factory=dict)
    disconnected: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        if self.server is None:
            self.server = Server(self.settings, self.clock)

    def connect(self, start: bool = True) -> Session:
        output = Outbox()
        holder: list[Session] = []
        session = self.server.connect(
            output.add, lambda: self.disconnected.append(holder[0].client_id)
        )
        holder.append(session)
        self.outputs[session] = output
        if start:
            session.start()
        return session

    def take(self, session: Session) -> bytes:
        """
        The bytes C{session} was sent since the last call.
        """
        return self.outputs[session].take()

    def frames(self, session: Session) -> list[tuple[str, dict[str, Any]]]:
        """
        Every frame C{session} was sent since the last call.
        """
        return parse(self.take(session))

    def send(self, session: Session, line: str) -> list[tuple[str, dict[str, Any]]]:
        """
        C{session} sends C{line}; return what it was sent back.
        """
        self.frames(session)
        session.data_received(line.encode("utf-8") + b"\r\n")
        return self.frames(session)

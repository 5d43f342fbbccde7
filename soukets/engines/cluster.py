"""
The parts of a node of a cluster that need no Redis, with no I/O: how
messages between nodes are written, the sequence numbers that reveal lost
channel messages, which channels Redis must deliver to this node, and who
is alive.  L{soukets.engines.redis} moves these bytes over Redis.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Union

import attrs

from soukets.hub import LOBBY_PREFIX
from soukets.outbox import Run

MESSAGE = b"m"
"""A channel message: every member of the channel gets it."""
PRESENCE = b"p"
"""A C{joined}/C{parted} frame: only members who asked for presence get it."""


def owner_of(name: str) -> str | None:
    """
    The node that runs the game of lobby channel or resume token C{name}
    (cluster lobby ids and tokens start with their node's id and a dot), or
    L{None} if C{name} has no node in it.
    """
    if name.startswith(LOBBY_PREFIX):
        name = name[len(LOBBY_PREFIX):]
    node, dot, _ = name.partition(".")
    return node if dot and node else None


def encode_channel_message(node: str, epoch: int, seq: int, kind: bytes, frames: bytes) -> bytes:
    """
    The Redis message that carries C{frames} (whole frames, each ending in
    a newline) published on one channel by C{node}: a header line with the
    publisher, its epoch and sequence number and the kind, then the frames.
    """
    return b"%s %d %d %s\n%s" % (node.encode(), epoch, seq, kind, frames)


def decode_channel_message(message: bytes) -> tuple[str, int, int, bytes, bytes]:
    """
    The parts of a message made by L{encode_channel_message}.

    @raise ValueError: if C{message} is not one.
    """
    header, _, frames = message.partition(b"\n")
    node, epoch, seq, kind = header.split(b" ")
    return node.decode(), int(epoch), int(seq), kind, frames


Record = Union[bytes, Run, dict]
"""
For one client of a node: bytes to send it (or a run of a channel's
messages, which may grow until the batch is sent), or an instruction.
"""


@attrs.define
class NodeBatch:
    """
    What one node has for another in one reactor turn: for each client
    (by its route, the id it was given on connecting), bytes to send it or
    instructions, in order.  It is sent as one Redis message.
    """

    records: list[tuple[str, Record]] = attrs.field(factory=list)

    def __bool__(self) -> bool:
        return bool(self.records)

    def add(self, route: str, record: Record) -> None:
        records = self.records
        if records:
            last = records[-1][1]
            if last.__class__ is Run and last is not record:
                last.sealed = True  # nothing may now join it ahead of record
        records.append((route, record))

    def encode(self, sender: str) -> bytes:
        """
        One line of JSON (the sender, then each record: a length for bytes,
        the instruction itself otherwise), then the bytes, end to end.
        """
        header: list[Any] = [sender]
        chunks = []
        for route, record in self.records:
            if isinstance(record, dict):
                header.append([route, record])
                continue
            data = record if isinstance(record, bytes) else record.data()
            header.append([route, len(data)])
            chunks.append(data)
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + b"".join(chunks)


def decode_node_message(message: bytes) -> tuple[str, list[tuple[str, Record]]]:
    """
    The sender and the records of a message made by L{NodeBatch.encode}.

    @raise ValueError: if C{message} is not one.
    """
    header_line, _, body = message.partition(b"\n")
    header = json.loads(header_line)
    if not isinstance(header, list) or not header or not all(
        isinstance(item, list) and len(item) == 2 for item in header[1:]
    ):
        raise ValueError("not a node message")
    sender, records, at = str(header[0]), [], 0
    for route, record in header[1:]:
        if isinstance(record, int):
            records.append((str(route), body[at: at + record]))
            at += record
        elif isinstance(record, dict):
            records.append((str(route), record))
        else:
            raise ValueError(f"bad record {record!r}")
    if at != len(body):
        raise ValueError("the lengths do not add up to the bytes that came")
    return sender, records


MAX_COUNTED_CHANNELS = 100_000


@attrs.define
class Sequences:
    """
    This node's sequence numbers, one per channel it publishes on: a
    receiver that sees a number skipped knows it missed a message.  The
    table is bounded: past L{MAX_COUNTED_CHANNELS} channels it starts
    again under a new epoch (receivers take the first number of an epoch
    as a fresh start).
    """

    epoch: int = 1
    _next: dict[str, int] = attrs.field(factory=dict)

    def next(self, channel: str) -> tuple[int, int]:
        seq = self._next.get(channel)
        if seq is None:
            if len(self._next) >= MAX_COUNTED_CHANNELS:
                self._next.clear()
                self.epoch += 1
            seq = 1
        self._next[channel] = seq + 1
        return self.epoch, seq


@attrs.define
class GapCounter:
    """
    The sequence numbers this node last received, per publisher and
    channel, while it is subscribed: L{seen} says how many messages were
    missed before this one (Redis pub/sub drops what is published while a
    subscriber is reconnecting).
    """

    missed: int = 0
    _last: dict[tuple[str, str], tuple[int, int]] = attrs.field(factory=dict)

    def seen(self, node: str, channel: str, epoch: int, seq: int) -> int:
        key = (node, channel)
        last = self._last.get(key)
        self._last[key] = (epoch, seq)
        if last is None or last[0] != epoch or seq <= last[1]:
            return 0
        gap = seq - last[1] - 1
        self.missed += gap
        return gap

    def forget_channel(self, channel: str) -> None:
        for key in [k for k in self._last if k[1] == channel]:
            del self._last[key]

    def forget_node(self, node: str) -> None:
        for key in [k for k in self._last if k[0] == node]:
            del self._last[key]


@attrs.define
class Subscriptions:
    """
    Which channels Redis must deliver to this node (those with members
    here), and the changes not yet sent to Redis, so that a turn's
    subscribes and unsubscribes go as one command each.
    """

    active: set[str] = attrs.field(factory=set)
    _subscribe: dict[str, None] = attrs.field(factory=dict)
    _unsubscribe: dict[str, None] = attrs.field(factory=dict)

    def opened(self, name: str) -> bool:
        """
        C{name} has its first member here; return whether Redis must be
        told (it is not if it was unsubscribed in this same turn).
        """
        self.active.add(name)
        if self._unsubscribe.pop(name, 0) is None:
            return False
        self._subscribe[name] = None
        return True

    def closed(self, name: str) -> None:
        self.active.discard(name)
        if self._subscribe.pop(name, 0) is None:
            return
        self._unsubscribe[name] = None

    def take(self) -> tuple[list[str], list[str]]:
        """
        The channels to subscribe to and to unsubscribe from, since the
        last call.
        """
        sub, unsub = list(self._subscribe), list(self._unsubscribe)
        self._subscribe.clear()
        self._unsubscribe.clear()
        return sub, unsub

    def everything(self) -> list[str]:
        """
        After a reconnect: every active channel is to be subscribed again.
        """
        self._subscribe.clear()
        self._unsubscribe.clear()
        return sorted(self.active)


@attrs.define
class Liveness:
    """
    The nodes this node believes alive.  A node that drops out of the live
    set Redis reports is dead; right after a reconnect, nobody is declared
    dead for C{grace} seconds (everyone's heartbeat needs a moment to come
    back after Redis restarted).
    """

    grace: float
    alive: set[str] = attrs.field(factory=set)
    _quiet_until: float = 0.0

    def reconnected(self, now: float) -> None:
        self._quiet_until = now + self.grace

    def update(self, live: Iterable[str], now: float) -> set[str]:
        """
        Redis says C{live} are alive: return the nodes that died since.
        """
        live = set(live)
        if now < self._quiet_until:
            self.alive |= live
            return set()
        dead = self.alive - live
        self.alive = live
        return dead

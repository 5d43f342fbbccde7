"""
What a client is owed until it is written, with no I/O: an L{Outbox} of
frames in order, where a channel's messages published in a row take one
place, a L{Run} shared by every receiver.

Publishing a message to a channel of N members used to cost N appends, one
to each receiver's outbox.  With runs, the first message of a run costs N
appends and every further one a single append to the run, which all its
receivers see: the per-receiver cost is paid once per run, not once per
message.

A run only grows while that cannot change what any receiver sees: it is
I{sealed} (closed to new messages) as soon as one of its receivers is owed
anything after it, or flushes it, and the channel seals it when its
members change or a message comes from another publisher (see
L{Channel.send<soukets.hub.Channel.send>}).  The next message then starts
a new run, after everything already owed.
"""

from __future__ import annotations

from typing import Callable, Union

import attrs
from twisted.internet.interfaces import IReactorTime


@attrs.define(eq=False)
class Run:
    """
    Messages of one channel, in order, owed to the same receivers.  Every
    receiver's outbox holds the same run object.
    """

    frames: list[bytes]
    sealed: bool = False
    _joined: bytes | None = None

    def add(self, frame: bytes) -> None:
        """
        Append C{frame}; only while the run is not sealed.
        """
        assert not self.sealed
        self.frames.append(frame)

    def data(self) -> bytes:
        """
        The run's bytes.  It is sealed from then on, so the bytes are joined
        once, for every receiver.
        """
        self.sealed = True
        if self._joined is None:
            self._joined = b"".join(self.frames)
        return self._joined


Owed = Union[bytes, Run]
"""What a session hands its output: the bytes of frames, or a run."""


@attrs.define
class Outbox:
    """
    Everything one client is owed and has not been written yet, in order.
    """

    _items: list[Owed] = attrs.field(factory=list)

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, item: Owed) -> None:
        """
        Owe C{item} after everything owed so far.
        """
        items = self._items
        if items:
            last = items[-1]
            if last.__class__ is Run and last is not item:
                last.sealed = True  # nothing may now join it ahead of item
        items.append(item)

    def take(self) -> bytes:
        """
        Everything owed, as bytes to write; the outbox is empty afterwards.
        """
        items, self._items = self._items, []
        # (A join of one bytes object returns that object: no copy.)
        return b"".join(
            [item if item.__class__ is bytes else item.data() for item in items]  # type: ignore[union-attr]
        )

    def clear(self) -> None:
        self._items = []


def next_turn(clock: IReactorTime, deliver: Callable[[bytes], None]) -> Callable[[Owed], None]:
    """
    A session output for an in-process client: what the session is owed
    during one reactor turn reaches C{deliver} as bytes on the next, as it
    would over a network.
    """
    outbox = Outbox()

    def flush() -> None:
        deliver(outbox.take())

    def output(item: Owed) -> None:
        if not outbox:
            clock.callLater(0, flush)
        outbox.add(item)

    return output

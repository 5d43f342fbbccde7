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

from typing import Callable, Optional, Union

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
    _framed: bytes | None = None

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

    def framed(self, framing: Framing) -> bytes:
        """
        The run's frames, each wrapped by C{framing} (for a transport that
        frames messages itself): made once, for every receiver of that
        transport.  (There is one such framing, WebSocket's.)
        """
        self.sealed = True
        if self._framed is None:
            self._framed = b"".join([framing(frame) for frame in self.frames])
        return self._framed


Owed = Union[bytes, Run]
"""What a session hands its output: the bytes of a frame, or a run."""

Framing = Callable[[bytes], bytes]
"""How a transport wraps one frame (its bytes, ending in a newline)."""


@attrs.define
class Outbox:
    """
    Everything one client is owed and has not been written yet, in order.
    """

    _items: list[Owed] = attrs.field(factory=list)

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, item: Owed) -> bool:
        """
        Owe C{item} after everything owed so far.

        @return: whether it is the first thing owed (the outbox was empty).
        """
        items = self._items
        if items:
            last = items[-1]
            if last.__class__ is Run and last is not item:
                last.sealed = True  # nothing may now join it ahead of item
            items.append(item)
            return False
        items.append(item)
        return True

    def take(self) -> bytes:
        """
        Everything owed, as bytes to write; the outbox is empty afterwards.
        """
        return self.take_frames()[0]

    def take_frames(self, framing: Optional[Framing] = None) -> tuple[bytes, int]:
        """
        Everything owed, as bytes to write (each frame wrapped by
        C{framing}, if given), and how many frames that is; the outbox is
        empty afterwards.
        """
        items = self._items
        if not items:
            return b"", 0
        self._items = []
        if len(items) == 1 and items[0].__class__ is bytes and framing is None:
            # (The usual case: one frame.)
            return items[0], 1  # type: ignore[return-value]
        count = 0
        chunks = []
        for item in items:
            if item.__class__ is bytes:
                count += 1
                chunks.append(item if framing is None else framing(item))  # type: ignore[arg-type]
            else:
                count += len(item.frames)  # type: ignore[union-attr]
                chunks.append(item.data() if framing is None else item.framed(framing))  # type: ignore[union-attr]
        # (A join of one bytes object returns that object: no copy.)
        return b"".join(chunks), count

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
        if outbox.add(item):
            clock.callLater(0, flush)

    return output

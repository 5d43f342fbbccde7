"""
Writing to a Twisted TCP transport at once, when nothing is waiting in its
buffer.

A Twisted transport buffers every write until the reactor next reports its
socket writable (twisted/twisted#5303, open since 2011): each write costs
two C{epoll_ctl} calls and one more trip through the event loop before the
bytes leave.  soukets already gathers what a client is owed during a reactor
turn into one write (L{Gate.owe<soukets.transports.connection.Gate.owe>});
L{ImmediateWriter} then sends it straight away when the transport has nothing
queued, and queues only what the socket did not take.  Measured with
C{bench/run.py --baseline}, this made C{fanout} and C{pairs} 1.57 x faster
and C{games} 1.13 x.

It sends with the transport's socket itself: Twisted's C{writeSomeData}
adds a memoryview and a retry loop for EINTR (which Python already retries)
to each send, 0.6 µs a write.

This reads state that Twisted does not document (C{dataBuffer}, C{offset},
C{_tempDataBuffer}, C{socket}) on the one transport class it knows,
L{FileDescriptor<twisted.internet.abstract.FileDescriptor>} (TCP and UNIX
sockets).  L{writer_for} checks for all of it once per connection and falls
back to C{transport.write} for anything else (TLS, a test's
C{StringTransport}), or if a later Twisted changes it;
C{tests/test_immediate.py} fails if the fast path is lost.  Delete this
module when Twisted writes at once by itself.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.abstract import FileDescriptor

_NEEDED = ("dataBuffer", "offset", "_tempDataBuffer", "connected", "disconnecting",
           "_writeDisconnected", "socket")


def writer_for(transport: Any) -> Callable[[bytes], None]:
    """
    The function to write to C{transport} with: an L{ImmediateWriter}'s
    C{write} for a Twisted socket transport that has the state it needs,
    C{transport.write} otherwise.
    """
    if isinstance(transport, FileDescriptor) and all(
        hasattr(transport, name) for name in _NEEDED
    ):
        return ImmediateWriter(transport).write
    return transport.write


class ImmediateWriter:
    """
    Writes to one Twisted socket transport, at once when nothing is queued.

    (A bound method of this class rather than a C{functools.partial}: a
    partial calls the function from C, which in CPython 3.11 enters the
    interpreter anew, where a method called from Python code does not:
    pairs 1.015 x, 7 runs.)
    """

    __slots__ = ("transport",)

    def __init__(self, transport: FileDescriptor) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        """
        Write C{data}, as C{transport.write} would, but send it at once if
        nothing is queued before it; whatever the socket does not take is
        queued as usual, after anything already queued, so the order of the
        bytes never changes.

        If the socket fails (or is full), the data is queued: the transport
        finds the failure on its next write and reports the connection lost
        as usual, never from inside this call.
        """
        transport = self.transport
        if (
            transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
            and not transport._tempDataBuffer
            and transport.offset == len(transport.dataBuffer)
        ):
            try:
                sent = transport.socket.send(data)  # type: ignore[attr-defined]
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)


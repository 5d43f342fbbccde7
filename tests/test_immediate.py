"""
Tests for L{soukets.immediate}: writing at once when a transport has nothing
queued, without ever changing the order of the bytes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from soukets.immediate import ImmediateWriter, writer_for


class Socket(FileDescriptor):
    """
    A transport whose socket takes, at each send, as many bytes as the next
    number in C{takes} (all of them when C{takes} is empty), or fails with
    the next exception in it (an L{OSError}, as a socket's C{send} raises
    it, that the transport's own C{writeSomeData} reports as lost).
    """

    def __init__(self, *takes: Any) -> None:
        super().__init__(MemoryReactor())
        self.connected = True
        self.takes = list(takes)
        self.sent = b""
        self.sends: list[bytes] = []
        self.socket = self

    def send(self, data: bytes) -> int:
        data = bytes(data)
        self.sends.append(data)
        take = self.takes.pop(0) if self.takes else len(data)
        if isinstance(take, Exception):
            raise take
        self.sent += data[:take]
        return take

    def writeSomeData(self, data: bytes) -> Any:
        try:
            return self.send(data)
        except OSError:
            return ConnectionLost()

    def drain(self) -> None:
        """
        What the reactor does when the socket is writable: send from the
        transport's queue.
        """
        self.takes = []
        while self in self.reactor.getWriters():
            self.doWrite()


class WriteNowTests(SynchronousTestCase):
    def test_sent_at_once(self) -> None:
        """
        With nothing queued, the bytes go to the socket in the call, and the
        transport is not left waiting to write.
        """
        socket = Socket()
        ImmediateWriter(socket).write(b"hello\n")
        self.assertEqual(socket.sent, b"hello\n")
        self.assertNotIn(socket, socket.reactor.getWriters())

    def test_rest_queued_in_order(self) -> None:
        """
        What the socket does not take is queued; later writes queue behind
        it without touching the socket, and everything leaves in order.
        """
        socket = Socket(3)
        ImmediateWriter(socket).write(b"abcdef")
        self.assertEqual((socket.sent, len(socket.sends)), (b"abc", 1))
        self.assertIn(socket, socket.reactor.getWriters())
        ImmediateWriter(socket).write(b"ghi")
        self.assertEqual(len(socket.sends), 1)
        socket.drain()
        self.assertEqual(socket.sent, b"abcdefghi")
        ImmediateWriter(socket).write(b"jk")
        self.assertEqual(socket.sends[-1], b"jk")
        self.assertEqual(socket.sent, b"abcdefghijk")

    def test_nothing_taken(self) -> None:
        socket = Socket(0)
        ImmediateWriter(socket).write(b"abc")
        socket.drain()
        self.assertEqual(socket.sent, b"abc")

    def test_socket_full(self) -> None:
        """
        A full socket (which raises rather than take nothing) leaves the
        bytes queued, to go when it is writable.
        """
        socket = Socket(BlockingIOError())
        ImmediateWriter(socket).write(b"abc")
        socket.drain()
        self.assertEqual(socket.sent, b"abc")

    def test_failure_left_to_the_transport(self) -> None:
        """
        A failing socket raises nothing here: the data is queued, and the
        transport meets the failure on its next write, as it would have.
        """
        socket = Socket(BrokenPipeError(), BrokenPipeError())
        ImmediateWriter(socket).write(b"abc")
        self.assertIn(socket, socket.reactor.getWriters())
        self.assertIsInstance(socket.doWrite(), ConnectionLost)

    def test_closing_transport(self) -> None:
        """
        A transport that is closing or half-closed is written to only the
        usual way.
        """
        for attribute in ("disconnecting", "_writeDisconnected"):
            socket = Socket()
            setattr(socket, attribute, True)
            ImmediateWriter(socket).write(b"abc")
            self.assertEqual(socket.sends, [], attribute)


class WriterForTests(SynchronousTestCase):
    def test_other_transports(self) -> None:
        transport = StringTransport()
        self.assertEqual(writer_for(transport), transport.write)

    def test_socket_transport(self) -> None:
        writer = writer_for(Socket())
        self.assertIsInstance(writer.__self__, ImmediateWriter)  # type: ignore[attr-defined]


class Source(Protocol):
    """
    Writes C{chunks} with the writer L{writer_for} picks, as soon as it is
    connected.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def connectionMade(self) -> None:
        self.factory.writer = writer_for(self.transport)
        for chunk in self.chunks:
            self.factory.writer(chunk)
        self.transport.loseConnection()


class Sink(Protocol):
    """
    Reads nothing for a moment (so that the sender's socket fills and its
    transport queues), then everything, until the connection closes.
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        reactor.callLater(0.3, self.transport.resumeProducing)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(bytes(self.received))


class RealSocketTests(TestCase):
    async def test_order_over_loopback(self) -> None:
        """
        Over a real TCP connection, 8 MB written while the reader does not
        read (so the socket fills and the transport queues) arrive whole and
        in order; and Twisted's TCP transport still gets the fast path.
        """
        chunks = [b"%07d|" % i + b"x" * (i % 3000) for i in range(5000)]
        factory = Factory.forProtocol(lambda: Source(chunks))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        sink = Sink()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), sink
        )
        received = await sink.done
        self.assertEqual(received, b"".join(chunks))
        self.assertIsInstance(factory.writer.__self__, ImmediateWriter)

"""
Tests for L{soukets.transports.tcp} and L{soukets.transports.connection}: admission through the host counter, slow
readers, and the wiring to a session, over in-memory transports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from soukets.counter import HostCounterService
from soukets.transports.connection import ConnectionState, Gate, SlowReaderGuard
from soukets.transports.tcp import SouketsFactory, SouketsProtocol
from soukets.server import Server, ServerSettings

from tests.support import parse, synchronous


class KeepAliveTransport(StringTransport):
    """
    A transport that records its keep-alive setting, and each write.
    """

    keepalive = False

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepalive = enabled

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class ProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.make(ServerSettings(max_clients=2, seat_hold=0))

    def make(self, settings: ServerSettings, run: Any = synchronous, max_buffer: int = 4096) -> None:
        path = Path(self.mktemp()) / "clients.json"
        self.counter = HostCounterService(
            path, settings.max_clients, reactor=self.clock, run=run
        )
        self.counter.startService()
        self.addCleanup(self.counter.stopService)
        self.server = Server(settings, self.clock, host_clients=self.counter.host_clients)
        self.factory = SouketsFactory(Gate(self.server, self.counter, max_buffer=max_buffer))

    def make_pending(self) -> list[Deferred[Any]]:
        """
        Make the counter's transactions wait until their L{Deferred}s (in the
        list returned) are fired by the test.
        """
        pending: list[Deferred[Any]] = []

        def later(f: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            d.addCallback(lambda _: f())
            pending.append(d)
            return d

        self.make(ServerSettings(), run=later)
        return pending

    def connect(self) -> tuple[SouketsProtocol, KeepAliveTransport]:
        protocol = self.factory.buildProtocol(None)
        transport = KeepAliveTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def lose(self, protocol: SouketsProtocol) -> None:
        protocol.connectionLost(Failure(ConnectionError("gone")))

    def frames(self, transport: StringTransport) -> list[tuple[str, dict[str, Any]]]:
        self.clock.advance(0)  # the end of the reactor turn: outboxes flushed
        frames = parse(transport.value())
        transport.clear()
        return frames

    def test_welcome_and_queue(self) -> None:
        protocol, transport = self.connect()
        self.assertEqual(
            [body["type"] for _, body in self.frames(transport)], ["welcome", "queued"]
        )
        self.assertEqual(transport.producerState, "producing")
        self.assertTrue(transport.keepalive)
        protocol.dataReceived(b';{"type":"ping"}\r\n')
        self.assertEqual(self.frames(transport), [("", {"type": "pong"})])

    def test_frames_held_until_admitted(self) -> None:
        """
        While the counter decides, the connection is read (so that its end
        is seen) but what it sends is held; it is answered, in order, after
        the welcome.
        """
        pending = self.make_pending()
        protocol, transport = self.connect()
        self.assertEqual((transport.producerState, transport.value()), ("producing", b""))
        self.assertIs(protocol.connection.state, ConnectionState.ADMITTING)
        protocol.dataReceived(b';{"type":"ping","id":1}\r\n;{"type":"pi')
        protocol.dataReceived(b'ng","id":2}\r\n')
        pending[-1].callback(None)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(
            [(body["type"], body.get("id")) for _, body in self.frames(transport)],
            [("welcome", None), ("queued", None), ("pong", 1), ("pong", 2)],
        )

    def test_early_flood_stops_reading(self) -> None:
        """
        Past a line's worth of bytes held during admission, reading stops
        until the counter has decided.
        """
        pending = self.make_pending()
        protocol, transport = self.connect()
        protocol.dataReceived(b"x" * (self.server.settings.max_line + 1))
        self.assertEqual(transport.producerState, "paused")
        pending[-1].callback(None)
        self.assertEqual(transport.producerState, "producing")

    def test_closed_during_admission_never_matched(self) -> None:
        """
        A connection closed while the counter decides is never welcomed nor
        queued, so a waiting player is not matched with it; its slot is
        given back.
        """
        pending = self.make_pending()
        waiting, waiting_transport = self.connect()
        pending[-1].callback(None)
        protocol, transport = self.connect()
        self.lose(protocol)
        pending[-1].callback(None)  # admitted...
        pending[-1].callback(None)  # ...and released
        types = [body["type"] for _, body in self.frames(waiting_transport)]
        self.assertEqual(types, ["welcome", "queued"])
        self.assertEqual(self.server.lobbies.waiting, 1)
        self.assertEqual(transport.value(), b"")

    def test_gone_before_admitted(self) -> None:
        """
        A connection lost while waiting for the counter gives its place back.
        """
        pending = self.make_pending()
        protocol, transport = self.connect()
        self.lose(protocol)
        pending[-1].callback(None)  # admitted...
        pending[-1].callback(None)  # ...and released
        self.assertEqual(self.counter._file.clients, 0)
        self.assertEqual(self.server.sessions, {})

    def test_server_full(self) -> None:
        self.connect(), self.connect()
        protocol, transport = self.connect()
        [(channel, error)] = self.frames(transport)
        self.assertEqual((channel, error["type"], error["code"]), ("", "error", "server_full"))
        self.assertIn("2 clients", error["message"])
        self.assertTrue(transport.disconnecting)
        self.lose(protocol)
        self.assertEqual(self.counter._file.clients, 2)

    def test_place_given_back(self) -> None:
        first, _ = self.connect()
        self.connect()
        self.lose(first)
        protocol, transport = self.connect()
        self.assertIs(protocol.connection.state, ConnectionState.OPEN)
        self.assertEqual(self.counter._file.clients, 2)

    def test_counter_unavailable(self) -> None:
        """
        When the counter file cannot be used, clients are refused with
        server_full, saying why, and the server keeps running.
        """
        def broken(f: Any) -> Deferred[Any]:
            from soukets.counter import CounterError

            def fail() -> None:
                raise CounterError("disk on fire")

            return synchronous(fail)

        self.counter._run = broken
        protocol, transport = self.connect()
        [(_, error)] = self.frames(transport)
        self.assertEqual(error["code"], "server_full")
        self.assertIn("cannot count", error["message"])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_slow_reader_cut_off(self) -> None:
        """
        A client whose transport stays full past C{max_buffer} bytes is cut
        off and leaves its game; the other player is told.
        """
        a, ta = self.connect()
        b, tb = self.connect()
        channel = self.frames(ta)[2][1]["channel"]
        self.frames(tb)
        ta.producer.pauseProducing()  # the kernel buffer is full: a stops reading
        line = (channel + ';{"type":"publish","data":"' + "x" * 500 + '"}\r\n').encode()
        for _ in range(20):
            b.dataReceived(line)
            self.clock.advance(0)
            if ta.disconnected:
                break
        self.assertTrue(ta.disconnected)  # aborted
        self.lose(a)
        self.assertEqual(
            [body["type"] for _, body in self.frames(tb)], ["left", "game_over", "closed"]
        )

    def test_slow_reader_cut_parts_at_once(self) -> None:
        """
        A slow reader cut off leaves its channels at once: presence
        subscribers get parted, no zombie lingers.
        """
        self.make(ServerSettings(max_clients=5, auto_queue=False))
        slow, ts = self.connect()
        watcher, tw = self.connect()
        publisher, _ = self.connect()
        watcher.dataReceived(b'room;{"type":"subscribe","presence":true}\n')
        slow.dataReceived(b'room;{"type":"subscribe"}\n')
        self.frames(tw)
        self.frames(ts)
        slow_id = slow.connection.session.client_id
        ts.producer.pauseProducing()
        line = b'room;{"type":"publish","data":"' + b"x" * 500 + b'"}\n'
        for _ in range(20):
            publisher.dataReceived(line)
            self.clock.advance(0)
            if ts.disconnected:
                break
        self.assertTrue(ts.disconnected)
        self.lose(slow)
        parted = [body for _, body in self.frames(tw) if body["type"] == "parted"]
        self.assertEqual(parted, [{"type": "parted", "client": slow_id}])
        self.assertEqual(self.server.tally.slow_readers_cut, 1)

    def test_one_write_per_turn(self) -> None:
        """
        What one reactor turn owes a client goes to its transport in a
        single write.
        """
        a, ta = self.connect()
        self.frames(ta)
        del ta.writes[:]
        a.dataReceived(b';{"type":"ping"}\n' * 5)
        self.assertEqual(ta.writes, [])
        self.clock.advance(0)
        self.assertEqual(ta.writes, [b';{"type":"pong"}\n' * 5])

    def test_guard_paused_on_every_write(self) -> None:
        """
        Twisted pauses its producer on every write while the buffer stays
        full; the backlog keeps counting through those calls.
        """
        cut: list[bool] = []
        guard = SlowReaderGuard(100, lambda: cut.append(True))
        for _ in range(10):
            guard.pauseProducing()
            guard.wrote(30)
        self.assertEqual(cut, [True])

    def test_resumed_reader_not_cut_off(self) -> None:
        """
        Only what is written while the transport stays full counts: a
        reader that catches up in time is never cut off.
        """
        a, ta = self.connect()
        self.connect()
        for _ in range(10):
            ta.producer.pauseProducing()
            a.dataReceived(b';{"type":"ping"}\n' * 200)  # 3,200 bytes of pongs
            self.clock.advance(0)
            ta.producer.resumeProducing()
            self.clock.advance(1)
        self.assertEqual(len(ta.value()) > 4096 * 5, True)
        self.assertFalse(ta.disconnected)

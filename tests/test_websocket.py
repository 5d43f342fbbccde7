"""
The WebSocket transport and the web site, end to end: a real daemon on a
loopback port, driven by an independent WebSocket client library
(C{websocket-client}, not the server's Autobahn) and by plain TCP clients
in the same lobbies and channels.
"""

from __future__ import annotations

import json
import socket
import struct
import time
import urllib.error
import urllib.request
from typing import Any

import websocket
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from soukets.session import Session
from soukets.server import ServerSettings
from soukets.transports.websocket import normalize_origin, SouketsWebSocketFactory

from tests.daemon import TIMEOUT, Client, Daemon
from tests.support import Harness

WEB = ("--web", "tcp:0:interface=127.0.0.1")


class WebSocketClient:
    """
    A browser-like client: one frame per text message, bounded waits.
    """

    def __init__(self, port: int, **options: Any) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/ws", timeout=TIMEOUT, **options
        )

    def send(self, frame: str) -> None:
        self.ws.send(frame)

    def read(self) -> tuple[str, dict[str, Any]]:
        text = self.ws.recv()
        assert isinstance(text, str), text
        assert "\n" not in text, text
        channel, _, document = text.partition(";")
        return channel, json.loads(document)

    def expect(self, *types: str) -> list[tuple[str, dict[str, Any]]]:
        frames = [self.read() for _ in types]
        got = tuple(body["type"] for _, body in frames)
        if got != types:
            raise AssertionError(f"expected {types}, got {frames}")
        return frames

    def close_code(self) -> int:
        """
        Read until the server's close frame; its status code.
        """
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return struct.unpack("!H", data[:2])[0]

    def close(self) -> None:
        self.ws.close()


class WebCase(SynchronousTestCase):
    def start(self, *args: str) -> Daemon:
        daemon = Daemon(self.mktemp(), *WEB, *args)
        self.addCleanup(daemon.stop)
        return daemon

    def browser(self, daemon: Daemon, **options: Any) -> WebSocketClient:
        client = WebSocketClient(daemon.web_port, **options)
        self.addCleanup(client.close)
        return client

    def tcp(self, daemon: Daemon) -> Client:
        client = daemon.client()
        self.addCleanup(client.close)
        return client

    def get(self, daemon: Daemon, path: str) -> tuple[int, bytes, Any]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{daemon.web_port}{path}", timeout=TIMEOUT
            ) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers


class WebSocketTests(WebCase):
    def test_welcome(self) -> None:
        daemon = self.start("--no-auto-queue")
        browser = self.browser(daemon)
        [(channel, welcome)] = browser.expect("welcome")
        self.assertEqual((channel, welcome["protocol"], welcome["game"]), ("", 1, "rps"))
        browser.send(';{"type":"ping","id":1}\n')  # a trailing newline is tolerated
        self.assertEqual(browser.expect("pong")[0][1]["id"], 1)
        browser.send(';{"type":"ping","id":2}\r\n')
        self.assertEqual(browser.expect("pong")[0][1]["id"], 2)

    def test_pubsub_with_tcp_both_ways(self) -> None:
        daemon = self.start("--no-auto-queue")
        browser, telnet = self.browser(daemon), self.tcp(daemon)
        browser.expect("welcome")
        [(_, welcome)] = telnet.expect("welcome")
        for client in (browser, telnet):
            client.send('room;{"type":"subscribe"}')
            client.expect("subscribed")
        for n in range(5):
            browser.send('room;{"type":"publish","data":[%d,"é"]}' % n)
        for n in range(5):
            [(channel, message)] = telnet.expect("message")
            self.assertEqual((channel, message["data"]), ("room", [n, "é"]))
        telnet.send('room;{"type":"publish","data":{"from":"tcp"},"id":"x"}')
        self.assertEqual(telnet.expect("published")[0][1]["receivers"], 1)
        [(_, message)] = browser.expect("message")
        self.assertEqual((message["from"], message["data"]), (welcome["client"], {"from": "tcp"}))

    def test_game_between_browser_and_tcp(self) -> None:
        daemon = self.start("--rounds", "2")
        browser, telnet = self.browser(daemon), self.tcp(daemon)
        [(_, me)] = browser.expect("welcome")
        browser.expect("queued")
        [(_, them)] = telnet.expect("welcome")
        telnet.expect("queued")
        [(_, matched)] = browser.expect("matched")
        self.assertEqual(telnet.expect("matched")[0][1]["channel"], matched["channel"])
        lobby = matched["channel"]
        self.assertEqual(matched["players"], [me["client"], them["client"]])
        for number, (mine, theirs, winner) in enumerate(
            [("rock", "scissors", me), ("paper", "scissors", them)], start=1
        ):
            browser.expect("round"), telnet.expect("round")
            browser.send(lobby + ';{"type":"move","move":"%s"}' % mine)
            telnet.send(lobby + ';{"type":"move","move":"%s"}' % theirs)
            for client in (browser, telnet):
                [_, _, (_, result)] = client.expect("moved", "moved", "result")
                self.assertEqual(result["round"], number)
                self.assertEqual(result["winners"], [winner["client"]])
        for client in (browser, telnet):
            [(_, over), _] = client.expect("game_over", "closed")
            self.assertEqual(over["scores"], {me["client"]: 1, them["client"]: 1})
        browser.send(';{"type":"queue"}')
        browser.expect("queued")

    def test_errors_and_limits(self) -> None:
        """
        A binary message is bad_frame, a message over --max-line is
        line_too_long (and the connection goes on), one over the hard limit
        (4 x --max-line) closes it with 1009.
        """
        daemon = self.start("--no-auto-queue", "--max-line", "1000")
        browser = self.browser(daemon)
        browser.expect("welcome")
        browser.ws.send_binary(b';{"type":"ping"}')
        self.assertEqual(browser.expect("error")[0][1]["code"], "bad_frame")
        browser.send(';{"type":"ping","x":"%s"}' % ("y" * 2000))
        self.assertEqual(browser.expect("error")[0][1]["code"], "line_too_long")
        browser.send("nonsense")
        self.assertEqual(browser.expect("error")[0][1]["code"], "bad_frame")
        browser.send(';{"type":"ping"}')
        browser.expect("pong")
        browser.send(";" + "z" * 5000)
        self.assertEqual(browser.close_code(), 1009)
        # Every other client goes on.
        other = self.browser(daemon)
        other.expect("welcome")

    def test_server_full_counts_both_transports(self) -> None:
        daemon = self.start("--no-auto-queue", "--max-clients", "2")
        telnet = self.tcp(daemon)
        telnet.expect("welcome")
        browser = self.browser(daemon)
        browser.expect("welcome")
        third = self.browser(daemon)
        [(_, error)] = third.expect("error")
        self.assertEqual(error["code"], "server_full")
        self.assertEqual(third.close_code(), 1013)
        refused = self.tcp(daemon)
        self.assertEqual(refused.expect("error")[0][1]["code"], "server_full")
        browser.close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the slot comes back once the server has seen it go
            again = WebSocketClient(daemon.web_port)
            self.addCleanup(again.close)
            if again.read()[1]["type"] == "welcome":
                break
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_origin(self) -> None:
        daemon = self.start("--no-auto-queue", "--web-origin", "https://game.example")
        for origin in ("http://evil.example", "null", f"http://127.0.0.1:{daemon.web_port + 1}"):
            with self.assertRaises(websocket.WebSocketBadStatusException) as caught:
                WebSocketClient(daemon.web_port, origin=origin)
            self.assertEqual(caught.exception.status_code, 403, origin)
        for options in (
            {"origin": f"http://127.0.0.1:{daemon.web_port}"},  # the site's own
            {"origin": "https://game.example"},
            {"suppress_origin": True},  # not a browser
        ):
            self.browser(daemon, **options).expect("welcome")

    def test_slow_reader_cut(self) -> None:
        """
        A WebSocket client that never reads is cut off once the server
        holds --max-buffer bytes for it; the others get every message.
        """
        daemon = self.start("--no-auto-queue", "--max-buffer", "65536", "--max-rate", "100000")
        sluggard = self.browser(daemon)
        sluggard.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader = self.browser(daemon)
        publisher = self.tcp(daemon)
        for client in (sluggard, reader):
            client.expect("welcome")
            client.send('news;{"type":"subscribe"}')
            client.expect("subscribed")
        publisher.expect("welcome")
        payload = "x" * 2000
        count = 2000  # 4 MB
        batch = 10  # 20 KB: the reader keeps up
        for start in range(0, count, batch):
            publisher.send_raw(b"".join(
                b'news;{"type":"publish","data":[%d,"%s"]}\n' % (n, payload.encode())
                for n in range(start, start + batch)
            ))
            for n in range(start, start + batch):
                [(_, message)] = reader.expect("message")
                self.assertEqual(message["data"][0], n)
        daemon.wait_for("cut off: it read too slowly")

    def test_vanished_browser_dropped(self) -> None:
        """
        A browser that stops answering pings is dropped (its slot freed).
        """
        daemon = self.start("--no-auto-queue", "--web-ping", "1")
        silent = self.browser(daemon)
        silent.expect("welcome")
        watcher = self.tcp(daemon)
        watcher.expect("welcome")
        deadline = time.monotonic() + TIMEOUT
        while True:  # the silent client never reads, so never answers a ping
            watcher.send(';{"type":"stats"}')
            [(_, stats)] = watcher.expect("stats")
            if stats["clients"] == 1:
                break
            self.assertLess(time.monotonic(), deadline, stats)
            time.sleep(0.2)


class SiteTests(WebCase):
    def test_page(self) -> None:
        daemon = self.start()
        status, body, headers = self.get(daemon, "/")
        self.assertEqual(status, 200)
        self.assertIn(b"<title>soukets", body)
        self.assertIn("default-src 'self'", headers["Content-Security-Policy"])
        for path in ("/app.js", "/style.css"):
            self.assertEqual(self.get(daemon, path)[0], 200)
        self.assertEqual(self.get(daemon, "/nothing-here")[0], 404)

    def test_healthz(self) -> None:
        daemon = self.start("--max-clients", "1", "--no-auto-queue")
        self.assertEqual(self.get(daemon, "/healthz")[:2], (200, b"ok"))
        client = self.tcp(daemon)
        client.expect("welcome")
        status, body, _ = self.get(daemon, "/healthz")
        self.assertEqual((status, body), (503, b"full"))

    def test_metrics(self) -> None:
        """
        /metrics parses as Prometheus text and counts what happened.
        """
        daemon = self.start()
        browser, telnet = self.browser(daemon), self.tcp(daemon)
        browser.expect("welcome", "queued")
        telnet.expect("welcome", "queued")
        [(_, matched)] = browser.expect("matched")
        telnet.expect("matched")
        browser.expect("round"), telnet.expect("round")
        lobby = matched["channel"]
        browser.send(lobby + ';{"type":"move","move":"rock"}')
        telnet.send(lobby + ';{"type":"move","move":"paper"}')
        telnet.send(';{"type":"nonsense"}')
        browser.expect("moved", "moved", "result", "game_over", "closed")
        telnet.expect("moved", "moved", "result", "game_over", "closed", "error")
        status, body, headers = self.get(daemon, "/metrics")
        self.assertEqual(status, 200)
        samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        self.assertEqual(samples[("soukets_clients", ())], 2)
        self.assertEqual(samples[("soukets_host_clients", ())], 2)
        self.assertEqual(samples[("soukets_queued", ())], 0)
        self.assertEqual(samples[("soukets_lobbies", ())], 0)
        self.assertEqual(samples[("soukets_channels", ())], 0)
        self.assertEqual(samples[("soukets_connections_total", (("transport", "tcp"),))], 1)
        self.assertEqual(samples[("soukets_connections_total", (("transport", "websocket"),))], 1)
        self.assertEqual(samples[("soukets_games_total", (("reason", "completed"),))], 1)
        self.assertEqual(samples[("soukets_errors_total", (("code", "unknown_type"),))], 1)
        self.assertEqual(samples[("soukets_slow_readers_cut_total", ())], 0)
        self.assertEqual(samples[("soukets_frames_received_total", ())], 3)
        # welcome, queued, matched, round, moved x2, result, game_over,
        # closed to each, and the error.
        self.assertEqual(samples[("soukets_frames_sent_total", ())], 19)
        self.assertIn(("process_resident_memory_bytes", ()), samples)


class OriginRuleTests(SynchronousTestCase):
    def test_normalize(self) -> None:
        self.assertEqual(normalize_origin("HTTP://Example.ORG:80"), "http://example.org")
        self.assertEqual(normalize_origin("https://a.b:8443/"), "https://a.b:8443")
        self.assertEqual(normalize_origin("http://[::1]:7780"), "http://[::1]:7780")
        for bad in ("null", "file://x", "example.org", "http://", "http://h:99999"):
            self.assertIsNone(normalize_origin(bad), bad)

    def test_allowed(self) -> None:
        harness = Harness()
        from soukets.transports.connection import Gate

        factory = SouketsWebSocketFactory(Gate(harness.server, None), ["https://ok.example"])
        self.assertTrue(factory.origin_allowed("http://h:7780", "h:7780", False))
        self.assertFalse(factory.origin_allowed("https://h:7780", "h:7780", False))
        self.assertTrue(factory.origin_allowed("https://h", "h:443", True))
        self.assertTrue(factory.origin_allowed("https://ok.example", "h:7780", False))
        self.assertFalse(factory.origin_allowed("https://ok.example.evil", "h:7780", False))


class MessageTests(SynchronousTestCase):
    """
    One message is one frame: the session side of the WebSocket mapping.
    """

    def setUp(self) -> None:
        self.h = Harness(ServerSettings(auto_queue=False, max_line=50))
        self.session: Session = self.h.connect()
        self.h.frames(self.session)

    def answers(self, data: bytes, binary: bool = False) -> list[Any]:
        self.session.message_received(data, binary)
        return [(body["type"], body.get("code")) for _, body in self.h.frames(self.session)]

    def test_one_message_one_frame(self) -> None:
        self.assertEqual(self.answers(b';{"type":"ping"}'), [("pong", None)])
        self.assertEqual(self.answers(b';{"type":"ping"}\n'), [("pong", None)])
        self.assertEqual(self.answers(b';{"type":"ping"}\r\n'), [("pong", None)])
        # Two frames in one message are one (bad) frame, not two.
        self.assertEqual(self.answers(b';{"type":"ping"}\n;{"type":"ping"}'), [("error", "bad_json")])

    def test_binary_and_long(self) -> None:
        self.assertEqual(self.answers(b';{"type":"ping"}', binary=True), [("error", "bad_frame")])
        self.assertEqual(self.answers(b";" + b" " * 60), [("error", "line_too_long")])
        self.assertEqual(self.answers(b';{"type":"ping"}'), [("pong", None)])


class AdapterTests(SynchronousTestCase):
    """
    The WebSocket adapter on an in-memory transport and a task.Clock: the
    client side is wsproto (not the server's Autobahn), bytes are handed
    over by hand.
    """

    def setUp(self) -> None:
        from pathlib import Path

        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        from soukets.counter import HostCounterService
        from soukets.server import Server
        from soukets.transports.connection import Gate
        from tests.support import synchronous

        self.clock = Clock()
        counter = HostCounterService(Path(self.mktemp()) / "c.json", 10, reactor=self.clock, run=synchronous)
        counter.startService()
        self.addCleanup(counter.stopService)
        self.server = Server(ServerSettings(auto_queue=False, max_line=100), self.clock,
                             host_clients=counter.host_clients)
        self.factory = SouketsWebSocketFactory(Gate(self.server, counter))
        # Autobahn's timers (handshake and ping timeouts) on the test's
        # clock too: on the global reactor they would outlive the test
        # (txaio's batched timer only has call_later).
        clock = self.clock

        class ClockTimer:
            call_later = staticmethod(clock.callLater)

        self.factory._batched_timer = ClockTimer()
        self.protocol = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def exchange(self, data: bytes) -> list:

        self.protocol.dataReceived(data)
        self.clock.advance(0)
        out = self.transport.value()
        self.transport.clear()
        self.client.receive_data(out)
        return [e for e in self.client.events()]

    def open(self) -> list:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, Request

        self.client = WSConnection(ConnectionType.CLIENT)
        events = self.exchange(self.client.send(Request(host="127.0.0.1", target="/ws")))
        self.assertIsInstance(events[0], AcceptConnection)
        return events[1:]

    def texts(self, events: list) -> list[str]:
        from wsproto.events import TextMessage

        return [e.data for e in events if isinstance(e, TextMessage)]

    def test_one_frame_per_message(self) -> None:
        from wsproto.events import BytesMessage, TextMessage

        [welcome] = self.texts(self.open())
        self.assertTrue(welcome.startswith(';{"type":"welcome"'))
        self.assertNotIn("\n", welcome)
        events = self.exchange(self.client.send(TextMessage(';{"type":"ping","id":1}\n')))
        self.assertEqual(self.texts(events), [';{"type":"pong","id":1}'])
        events = self.exchange(self.client.send(BytesMessage(b';{"type":"ping"}')))
        self.assertIn('"code":"bad_frame"', self.texts(events)[0])
        events = self.exchange(self.client.send(TextMessage(";" + "x" * 150)))
        self.assertIn('"code":"line_too_long"', self.texts(events)[0])

    def test_over_the_hard_limit(self) -> None:
        from wsproto.events import CloseConnection, TextMessage

        self.open()
        events = self.exchange(self.client.send(TextMessage(";" + "x" * 500)))
        [close] = [e for e in events if isinstance(e, CloseConnection)]
        self.assertEqual(close.code, 1009)

    def test_messages_framed_once_for_all(self) -> None:
        """
        A channel's messages to several WebSocket members are framed once:
        every member is written the very same bytes.
        """
        from twisted.internet.testing import StringTransport
        from wsproto.events import TextMessage

        self.open()
        other = self.factory.buildProtocol(None)
        other_transport = StringTransport()
        other.makeConnection(other_transport)
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request

        second = WSConnection(ConnectionType.CLIENT)
        other.dataReceived(second.send(Request(host="127.0.0.1", target="/ws")))
        self.clock.advance(0)
        second.receive_data(other_transport.value())  # the 101 and the welcome
        list(second.events())
        publisher = self.server.connect(lambda data: None, lambda: None)
        for client, proto in ((self.client, self.protocol), (second, other)):
            proto.dataReceived(client.send(TextMessage('room;{"type":"subscribe"}')))
        self.clock.advance(0)
        self.transport.clear()
        other_transport.clear()
        for n in range(3):
            self.server.hub.publish("room", publisher, n, str(n))
        self.clock.advance(0)
        mine, theirs = self.transport.value(), other_transport.value()
        self.assertEqual(mine, theirs)
        self.client.receive_data(mine)
        self.assertEqual(
            [e.data for e in self.client.events() if isinstance(e, TextMessage)],
            [f'room;{{"type":"message","from":"{publisher.client_id}","data":{n}}}' for n in range(3)],
        )

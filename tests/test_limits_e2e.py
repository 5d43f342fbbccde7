"""
The per-connection limits seen from outside, through a real daemon: a
second angle on guards whose unit tests drive the session directly.
"""

from __future__ import annotations

from tests.daemon import Daemon, DaemonTestCase


class LimitsOverSocketsTests(DaemonTestCase):
    def client(self, daemon: Daemon):
        return self.connect(daemon, queued=False)[0]

    def test_rate_limit(self) -> None:
        """
        A burst past --rate-burst gets one rate_limited error, its extra
        frames are dropped, and another client is answered at once.
        """
        daemon = self.start("--no-auto-queue", "--max-rate", "5", "--rate-burst", "5")
        flooder, other = self.client(daemon), self.client(daemon)
        flooder.send_raw(b';{"type":"ping"}\n' * 50 + b';{"type":"ping","id":"last"}\n')
        frames = [flooder.read() for _ in range(6)]
        types = [body["type"] for _, body in frames]
        self.assertEqual(types, ["pong"] * 5 + ["error"])
        self.assertEqual(frames[-1][1]["code"], "rate_limited")
        other.send(';{"type":"ping","id":1}')
        self.assertEqual(other.expect("pong")[0][1]["id"], 1)
        # Nothing else was queued for the flooder: no pong per dropped ping.
        flooder.sock.settimeout(0.5)
        self.assertFalse(flooder.closed(timeout=0.5))
        self.assertNotIn(b"pong", flooder.buffer)

    def test_subscription_limit(self) -> None:
        daemon = self.start("--no-auto-queue", "--max-subscriptions", "3")
        client = self.client(daemon)
        for number in range(3):
            client.send(f'c{number};{{"type":"subscribe"}}')
            client.expect("subscribed")
        client.send('c9;{"type":"subscribe"}')
        [(channel, error)] = client.expect("error")
        self.assertEqual((channel, error["code"]), ("c9", "forbidden"))
        client.send('c0;{"type":"subscribe"}')  # again: not a new one
        client.expect("subscribed")
        client.send('c0;{"type":"unsubscribe"}')
        client.expect("unsubscribed")
        client.send('c9;{"type":"subscribe"}')
        client.expect("subscribed")

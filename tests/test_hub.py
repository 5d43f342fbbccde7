"""
Tests for L{soukets.hub.ChannelHub}: membership, publishing, lobby channels.
"""

from twisted.trial.unittest import SynchronousTestCase

from soukets.frames import FORBIDDEN, NOT_SUBSCRIBED, ProtocolError
from soukets.hub import ChannelHub

from tests.support import Recorder


class ChannelHubTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hub = ChannelHub()
        self.a, self.b, self.c = Recorder("a"), Recorder("b"), Recorder("c")

    def test_subscribe_counts_members(self) -> None:
        self.assertEqual(self.hub.subscribe("room", self.a), 1)
        self.assertEqual(self.hub.subscribe("room", self.b), 2)
        self.assertEqual(self.hub.subscribe("room", self.b), 2)  # twice: harmless
        self.assertEqual(len(self.hub), 1)
        self.assertEqual(self.hub.subscriptions(self.b), {"room"})

    def test_publish_to_others_in_order(self) -> None:
        """
        Every subscriber but the publisher gets each message, in order.
        """
        for who in (self.a, self.b, self.c):
            self.hub.subscribe("room", who)
        self.assertEqual(self.hub.publish("room", self.a, {"n": 1}), 2)
        self.assertEqual(self.hub.publish("room", self.b, "two"), 2)
        self.assertEqual(self.a.frames(), [("room", {"type": "message", "from": "b", "data": "two"})])
        self.assertEqual(
            self.c.frames(),
            [
                ("room", {"type": "message", "from": "a", "data": {"n": 1}}),
                ("room", {"type": "message", "from": "b", "data": "two"}),
            ],
        )

    def test_publish_encodes_once(self) -> None:
        """
        Every receiver is handed the very same bytes object.
        """
        sent = []

        class Sink(Recorder):
            def send(self, data: bytes) -> None:
                sent.append(data)

        for name in "xyz":
            self.hub.subscribe("room", Sink(name))
        self.hub.publish("room", self.a, "hi")
        self.assertEqual(len(sent), 3)
        self.assertTrue(sent[0] is sent[1] is sent[2])

    def test_publish_without_subscribing(self) -> None:
        """
        Anyone may publish on an ordinary channel; with no subscribers,
        nobody receives it.
        """
        self.assertEqual(self.hub.publish("empty", self.a, 1), 0)
        self.hub.subscribe("room", self.b)
        self.assertEqual(self.hub.publish("room", self.a, 1), 1)

    def test_channel_closes_when_empty(self) -> None:
        self.hub.subscribe("room", self.a)
        self.hub.unsubscribe("room", self.a)
        self.assertIsNone(self.hub.get("room"))
        self.assertEqual(len(self.hub), 0)
        self.assertEqual(self.hub.subscriptions(self.a), frozenset())

    def test_unsubscribe_not_subscribed(self) -> None:
        self.hub.subscribe("room", self.a)
        for name in ("room", "other"):
            error = self.assertRaises(ProtocolError, self.hub.unsubscribe, name, self.b)
            self.assertEqual(error.code, NOT_SUBSCRIBED)

    def test_lobby_only_for_players(self) -> None:
        """
        Only a lobby's players may subscribe or publish on it.
        """
        self.hub.open_lobby("L", [self.a, self.b])
        self.assertEqual(self.hub.subscriptions(self.a), {"L"})
        for attempt in (self.hub.subscribe, lambda n, s: self.hub.publish(n, s, 1)):
            error = self.assertRaises(ProtocolError, attempt, "L", self.c)
            self.assertEqual(error.code, FORBIDDEN)
        self.assertEqual(self.hub.publish("L", self.a, "hi"), 1)
        self.assertEqual(self.c.frames(), [])

    def test_ban(self) -> None:
        """
        A banned player is off the lobby channel and may not come back.
        """
        self.hub.open_lobby("L", [self.a, self.b])
        self.hub.ban("L", self.a)
        self.assertEqual(self.hub.publish("L", self.b, 1), 0)
        self.assertRaises(ProtocolError, self.hub.subscribe, "L", self.a)

    def test_close(self) -> None:
        self.hub.open_lobby("L", [self.a, self.b])
        self.hub.subscribe("room", self.a)
        self.hub.close("L")
        self.assertIsNone(self.hub.get("L"))
        self.assertEqual(self.hub.subscriptions(self.a), {"room"})
        self.assertEqual(self.hub.subscriptions(self.b), frozenset())

    def test_drop(self) -> None:
        """
        A client that goes away leaves every channel; emptied ones close.
        """
        self.hub.subscribe("one", self.a)
        self.hub.subscribe("two", self.a)
        self.hub.subscribe("two", self.b)
        self.assertEqual([c.name for c in self.hub.drop(self.a)], ["one", "two"])
        self.assertIsNone(self.hub.get("one"))
        self.assertEqual(list(self.hub.get("two").members), [self.b])
        self.assertEqual(self.hub.drop(self.a), [])

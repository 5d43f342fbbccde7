"""
Channel membership and delivery, with no I/O: who is subscribed to which
channel, and who receives what is published there.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

import attrs

from soukets.frames import (
    FORBIDDEN,
    NOT_SUBSCRIBED,
    ProtocolError,
    encode_frame,
    encode_message,
)
from soukets.outbox import Owed, Run

LOBBY_PREFIX = "lobby:"
"""
Channel names that start with this are reserved for lobbies: no one may use
one as an ordinary channel, before, during or after its game.
"""


def is_lobby_name(name: str) -> bool:
    """
    Whether C{name} has the form reserved for lobby channels.
    """
    return name.startswith(LOBBY_PREFIX)


MAX_LISTED = 1000
"""A C{members} answer lists at most this many members (its count is exact)."""


class Subscriber(Protocol):
    """
    What the hub needs of a client: its id and name, and a way to hand it
    frames.
    """

    client_id: str
    name: str

    def send(self, data: Owed) -> None:
        """
        Queue C{data} for the client: the bytes of one or more whole frames,
        or a L{Run} of messages that may still grow (see L{soukets.outbox}).
        """


@attrs.define(eq=False)
class Channel:
    """
    One open channel: its subscribers in the order they subscribed and, for a
    lobby channel, the players allowed on it (L{None} for an ordinary
    channel, which anyone may use).
    """

    name: str
    players: set[Subscriber] | None = None
    members: dict[Subscriber, None] = attrs.field(factory=dict)
    presence: dict[Subscriber, None] = attrs.field(factory=dict)
    """The members who asked to be told of joins and parts."""
    # The run that the next message may join, who it leaves out, and how
    # many receivers it has.
    _run: Run | None = None
    _run_exclude: Subscriber | None = None
    _run_receivers: int = 0

    @property
    def is_lobby(self) -> bool:
        return self.players is not None

    def send(self, data: bytes, exclude: Subscriber | None = None) -> int:
        """
        Hand C{data}, the bytes of one frame, to every member but
        C{exclude}; return how many got it.

        Frames sent in a row to the same receivers join one L{Run}, which
        each receiver was handed once.  (A lone receiver is simply handed
        the bytes: a run would save it nothing.)
        """
        run = self._run
        if run is not None and not run.sealed and self._run_exclude is exclude:
            run.add(data)
            return self._run_receivers
        members = tuple(self.members)
        receivers = len(members) - (exclude in self.members)
        item: Owed = data if receivers < 2 else Run([data])
        for member in members:
            if member is not exclude:
                member.send(item)
        if item is not data:
            self._run, self._run_exclude, self._run_receivers = item, exclude, receivers
        return receivers

    def join(self, subscriber: Subscriber) -> None:
        """
        Make C{subscriber} a member (it gets nothing sent before).
        """
        self.seal()
        self.members[subscriber] = None

    def part(self, subscriber: Subscriber) -> None:
        """
        Take C{subscriber} off the members (it gets nothing sent after).
        """
        self.seal()
        del self.members[subscriber]
        self.presence.pop(subscriber, None)

    def tell_presence(self, payload: dict[str, Any], about: Subscriber) -> None:
        """
        Send C{payload} (C{joined} or C{parted}) to the members who asked
        for presence, but not to the one it is about.  Nothing is done (or
        encoded) on a channel where nobody asked.
        """
        if not self.presence:
            return
        self.seal()
        data = encode_frame(self.name, payload)
        for member in tuple(self.presence):
            if member is not about:
                member.send(data)

    def seal(self) -> None:
        """
        Let the next frame start a new run.
        """
        if self._run is not None:
            self._run.sealed = True
            self._run = None


def _forbidden(name: str) -> ProtocolError:
    return ProtocolError(
        FORBIDDEN,
        f"channel {name} is a lobby channel (names starting with "
        f"{LOBBY_PREFIX} are reserved for lobbies): only its players may use it",
    )


@attrs.define
class ChannelHub:
    """
    Every open channel of one server, and every client's subscriptions.

    An ordinary channel exists while it has a subscriber.  A lobby channel is
    opened by L{open_lobby} for a fixed set of players and lasts until
    L{close} (or until nobody is left on it).
    """

    _channels: dict[str, Channel] = attrs.field(factory=dict)
    _subscriptions: dict[Subscriber, set[str]] = attrs.field(factory=dict)
    relay: Any = None
    """
    The engine's channel hooks when this server is one node of several
    (L{soukets.engines.redis.RedisEngine}): told when an ordinary channel
    opens and closes here, and of every message and presence frame, to
    pass them to the other nodes.  L{None} for one process alone.
    """

    def __len__(self) -> int:
        return len(self._channels)

    def get(self, name: str) -> Channel | None:
        """
        The open channel called C{name}, or L{None}.
        """
        return self._channels.get(name)

    def subscriptions(self, subscriber: Subscriber) -> frozenset[str]:
        """
        The names of the channels C{subscriber} is subscribed to.
        """
        return frozenset(self._subscriptions.get(subscriber, ()))

    def subscribe(self, name: str, subscriber: Subscriber, presence: bool = False) -> int:
        """
        Subscribe C{subscriber} to channel C{name}, opening it if needed.
        Subscribing twice is harmless.  With C{presence}, the subscriber is
        also told when others join and part.

        @return: how many members the channel has now.
        @raise ProtocolError: C{forbidden} for a lobby channel of others.
        """
        channel = self._channels.get(name)
        if channel is None:
            if is_lobby_name(name):
                raise _forbidden(name)  # a lobby that is not (or no longer) open
            channel = self._channels[name] = Channel(name)
            if self.relay is not None:
                self.relay.opened(name)
        elif channel.players is not None and subscriber not in channel.players:
            raise _forbidden(name)
        if subscriber not in channel.members:
            channel.join(subscriber)
            self._tell(
                channel,
                {"type": "joined", "client": subscriber.client_id, "name": subscriber.name},
                subscriber,
            )
        if presence:
            channel.presence[subscriber] = None
        self._subscriptions.setdefault(subscriber, set()).add(name)
        return len(channel.members)

    def who(self, name: str, asker: Subscriber) -> dict[str, Any]:
        """
        The members of channel C{name}, for a C{members} answer: anyone may
        ask about an ordinary channel, only its members about a lobby.

        @raise ProtocolError: C{forbidden} for a lobby C{asker} is not on.
        """
        channel = self._channels.get(name)
        if is_lobby_name(name) and (channel is None or asker not in channel.members):
            raise _forbidden(name)
        members = tuple(channel.members) if channel is not None else ()
        return {
            "count": len(members),
            "members": [
                {"client": m.client_id, "name": m.name} for m in members[:MAX_LISTED]
            ],
        }

    def watch(self, name: str, watcher: Subscriber) -> None:
        """
        Make C{watcher} a member of lobby channel C{name} without making it
        a player: it receives what is sent to everyone there, and may not
        publish.
        """
        channel = self._channels.get(name)
        if channel is None or channel.players is None:
            raise _forbidden(name)
        if watcher not in channel.members:
            channel.join(watcher)
            self._subscriptions.setdefault(watcher, set()).add(name)

    def replace_player(self, name: str, old: Subscriber, new: Subscriber) -> None:
        """
        On lobby channel C{name}, C{new} takes C{old}'s place among the
        players (a seat held, then taken back); C{new} is made a member if
        it is connected (C{old} stops being one).
        """
        channel = self._channels.get(name)
        if channel is None or channel.players is None:
            return
        channel.players.discard(old)
        channel.players.add(new)
        if old in channel.members:
            self._leave(channel, old)
        if getattr(new, "connected", True):
            channel.join(new)
            self._subscriptions.setdefault(new, set()).add(name)

    def unsubscribe(self, name: str, subscriber: Subscriber) -> Channel:
        """
        Take C{subscriber} off channel C{name}.  An ordinary channel left
        with no members is closed.

        @return: the channel it left.
        @raise ProtocolError: C{not_subscribed} if it was not subscribed.
        """
        channel = self._channels.get(name)
        if channel is None or subscriber not in channel.members:
            raise ProtocolError(
                NOT_SUBSCRIBED,
                f"you are not subscribed to {name}; subscribe with "
                f'{name};{{"type":"subscribe"}}',
            )
        self._leave(channel, subscriber)
        return channel

    def publish(
        self, name: str, publisher: Subscriber, data: Any, data_json: str | None = None
    ) -> int:
        """
        Send C{data} from C{publisher} to every other subscriber of C{name}.
        The frame is encoded once (around C{data_json}, C{data}'s compact
        JSON text, if given); every receiver gets the same bytes.

        @return: how many subscribers received it.
        @raise ProtocolError: C{forbidden} for a lobby channel of others.
        """
        channel = self._channels.get(name)
        if channel is None:
            if is_lobby_name(name):
                raise _forbidden(name)
            if self.relay is None:
                return 0
        elif channel.players is not None and publisher not in channel.players:
            raise _forbidden(name)
        frame = encode_message(name, publisher.client_id, data, data_json)
        receivers = 0 if channel is None else channel.send(frame, exclude=publisher)
        if self.relay is not None and not is_lobby_name(name):
            # (A lobby's channel lives on the node that runs its game.)
            self.relay.published(name, frame)
        return receivers

    def deliver(self, name: str, frames: bytes, presence: bool = False) -> None:
        """
        Frames published on channel C{name} on another node arrived: hand
        them to the members here (only to those who asked for presence, for
        C{joined} and C{parted}).
        """
        channel = self._channels.get(name)
        if channel is None or channel.is_lobby:
            return
        if presence:
            channel.seal()
            for member in tuple(channel.presence):
                member.send(frames)
            return
        for frame in frames.splitlines(keepends=True):
            channel.send(frame)

    def open_lobby(self, name: str, players: Iterable[Subscriber]) -> Channel:
        """
        Open lobby channel C{name}, which only C{players} may use, with every
        player subscribed.
        """
        assert name not in self._channels, name
        channel = self._channels[name] = Channel(name, players=set(players))
        for player in channel.players:  # type: ignore[union-attr]
            channel.join(player)
            self._subscriptions.setdefault(player, set()).add(name)
        return channel

    def ban(self, name: str, subscriber: Subscriber) -> None:
        """
        Take C{subscriber} off lobby channel C{name} for good: it is no longer
        one of its players.
        """
        channel = self._channels.get(name)
        if channel is None or channel.players is None:
            return
        channel.players.discard(subscriber)
        if subscriber in channel.members:
            self._leave(channel, subscriber)

    def close(self, name: str) -> None:
        """
        Close channel C{name}: unsubscribe everyone from it.
        """
        channel = self._channels.pop(name, None)
        if channel is None:
            return
        channel.seal()
        for member in channel.members:
            self._forget(member, name)
        channel.members.clear()

    def drop(self, subscriber: Subscriber) -> list[Channel]:
        """
        Unsubscribe C{subscriber} from every channel (it went away).

        @return: the channels it was on.
        """
        left = []
        for name in sorted(self._subscriptions.pop(subscriber, ())):
            channel = self._channels[name]
            channel.part(subscriber)
            self._tell(channel, {"type": "parted", "client": subscriber.client_id}, subscriber)
            self._close_if_empty(channel)
            left.append(channel)
        return left

    def _leave(self, channel: Channel, subscriber: Subscriber) -> None:
        channel.part(subscriber)
        self._tell(channel, {"type": "parted", "client": subscriber.client_id}, subscriber)
        self._forget(subscriber, channel.name)
        self._close_if_empty(channel)

    def _close_if_empty(self, channel: Channel) -> None:
        if not channel.members and channel.players is None:
            # An ordinary channel ends with its last member; a lobby's
            # lasts until its game is over (a held seat may come back).
            del self._channels[channel.name]
            if self.relay is not None:
                self.relay.closed(channel.name)

    def _tell(self, channel: Channel, payload: dict[str, Any], about: Subscriber) -> None:
        channel.tell_presence(payload, about)
        if self.relay is not None and not channel.is_lobby:
            self.relay.presence(channel.name, payload, about)

    def _forget(self, subscriber: Subscriber, name: str) -> None:
        names = self._subscriptions.get(subscriber)
        if names is not None:
            names.discard(name)
            if not names:
                del self._subscriptions[subscriber]

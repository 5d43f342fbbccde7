"""
The Redis engine: every soukets process on one Redis (and one
C{--engine-prefix}) is a node of one server.

What goes through Redis, and how:

  - B{channels}: a node subscribes to C{PREFIX:c:NAME} while the channel
    has members on it, publishes each turn's messages of a channel as one
    Redis message (with its id and a sequence number, so gaps are counted)
    and fans them out to its own members itself;
  - B{the queue}: one sorted set in arrival order; joining it and taking a
    lobby's worth of players off its front is one Lua script, so no player
    is ever taken twice;
  - B{games}: the node that formed a lobby runs its game.  Players of other
    nodes are L{RemoteSession}s there: what the game sends them goes to
    their node's inbox (C{PREFIX:n:NODE}, one message per node and turn),
    and their frames on the lobby channel come back the same way.  Lobby
    ids and resume tokens start with the owner's node id, so any node
    knows where to send a frame;
  - B{liveness}: each node beats every second (a sorted set scored by
    Redis' own clock); one that misses five seconds of beats is dead: its
    queue entries and games' listings are purged, its games' players on
    other nodes get C{game_over} with reason C{node_lost}, and the seats of
    its players in other nodes' games are held for them to resume.

The client library is txredisapi (Twisted-native, so no second event loop
or thread; hiredis parses the replies).  Its connections reconnect by
themselves with backoff; this module notices, answers C{engine_unavailable}
meanwhile, and restores its subscriptions and queue entries once Redis is
back.
"""

from __future__ import annotations

import enum
import itertools
import json
import secrets
import socket
import ssl as _ssl
from typing import Any

import attrs
import hiredis
import txredisapi
from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from soukets.engines import DEFAULT_PREFIX, IEngine, RedisAddress
from soukets.engines.store import (
    BEAT_SCRIPT,
    JOIN_SCRIPT,
    PURGE_SCRIPT,
    QUEUE_SCRIPT,
    RENAME_SCRIPT,
    REMOVE_SCRIPT,
    RESERVE,
    RESTORE_SCRIPT,
    STATS_SCRIPT,
    Keys,
)
from soukets.engines.cluster import (
    MESSAGE,
    PRESENCE,
    GapCounter,
    Liveness,
    NodeBatch,
    Sequences,
    Subscriptions,
    decode_channel_message,
    decode_node_message,
    encode_channel_message,
    owner_of,
)
from soukets.frames import (
    BAD_TOKEN,
    CONTROL,
    ENGINE_UNAVAILABLE,
    FORBIDDEN,
    IN_GAME,
    Frame,
    ProtocolError,
    encode_frame,
    with_id,
)
from soukets.games.base import GameOver
from soukets.hub import MAX_LISTED, is_lobby_name
from soukets.session import Session

BEAT = 1.0
"""Seconds between two heartbeats of a node."""
DEAD_MS = 5000
"""A node whose last beat is older than this (Redis' clock) is dead."""
FRESH_MS = 2500
"""Queue entries of a node that has not beaten for this long are not matched."""
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 5.0
STOP_TIMEOUT = 2.0
"""Seconds a stopping node waits for Redis at most."""
MAX_BACKLOG = 16 * 1024 * 1024
"""Bytes of commands not yet taken by Redis past which it is not keeping up."""
NODE_LOST = "node_lost"
CLAIM_TIMEOUT = 2.0
"""Seconds a node has to confirm its clients a lobby is taking."""

class EngineUnreachable(Exception):
    """
    Redis could not be reached (or refused us) at start-up.
    """


def reserve_node(address: RedisAddress, keys: Keys, timeout: float = CONNECT_TIMEOUT) -> str:
    """
    At start-up, before the reactor runs: check that Redis answers (with
    the URL's password and db) and reserve a node id no live node has.
    This is the only blocking exchange with Redis, and it happens once.

    @raise EngineUnreachable: with a one-line reason.
    """
    packer = txredisapi.BaseRedisProtocol()
    reader = hiredis.Reader()
    try:
        sock = socket.create_connection((address.host, address.port), timeout)
    except OSError as e:
        raise EngineUnreachable(f"cannot connect to {address}: {e.strerror or e}") from None
    try:
        sock.settimeout(timeout)
        if address.tls:
            sock = _ssl.create_default_context().wrap_socket(sock, server_hostname=address.host)

        def call(*args: Any) -> Any:
            sock.sendall(packer._build_command(*args))
            while True:
                reply = reader.gets()
                if reply is not False:
                    break
                data = sock.recv(65536)
                if not data:
                    raise EngineUnreachable(f"{address} closed the connection")
                reader.feed(data)
            if isinstance(reply, hiredis.ReplyError):
                raise EngineUnreachable(f"{address} answered {args[0]}: {reply}")
            return reply

        if address.password is not None:
            if address.username:
                call("AUTH", address.username, address.password)
            else:
                call("AUTH", address.password)
        if address.db:
            call("SELECT", address.db)
        call("PING")
        for _ in range(100):
            node = secrets.token_hex(2)
            if call("EVAL", RESERVE, 1, keys.nodes, node) == 1:
                return node
        raise EngineUnreachable(f"no free node id in {keys.nodes}")  # pragma: no cover
    except (OSError, _ssl.SSLError) as e:
        raise EngineUnreachable(f"{address}: {e}") from None
    finally:
        sock.close()


@attrs.define(eq=False)
class RemoteSession(Session):
    """
    A client of another node, as seen by the node that runs its game: the
    lobby, the hub and the game treat it as any session.  What it is sent
    goes to its node's inbox; its frames arrive from there.
    """

    node: str = ""


def _as_dict(reply: Any) -> dict[Any, Any]:
    """
    An HGETALL reply as a dict (it comes as a flat list from hiredis).
    """
    if isinstance(reply, dict):
        return reply
    reply = reply or []
    return dict(zip(reply[::2], reply[1::2]))


@attrs.frozen
class _Entry:
    """
    A queue entry taken off the queue: the entry, its place, its client.
    """

    entry: str
    score: str
    info: str
    node: str
    route: str
    client: str
    name: str


@attrs.define
class _Arrival:
    """
    A queue request waiting for the end of the turn, when every arrival
    of the turn goes to Redis in one script call.
    """

    entry: str
    info: str
    say_queued: Any
    refused: Any
    done: Deferred[None]


@attrs.define
class _Claim:
    """
    A lobby's worth of entries waiting for their nodes to confirm them.
    """

    entries: list[_Entry]
    done: Deferred[list[Session] | None]
    answers: dict[tuple[str, str], bool] = attrs.field(factory=dict)
    timer: Any = None


@implementer(IPushProducer)
@attrs.define
class _Backlog:
    """
    Told by the transport to Redis when its unsent output passes, and falls
    back under, L{MAX_BACKLOG}.
    """

    engine: RedisEngine

    def pauseProducing(self) -> None:
        if not self.engine.backlogged:
            self.engine.log.warn("engine: Redis is not keeping up; cross-node traffic refused meanwhile")
        self.engine.backlogged = True

    def resumeProducing(self) -> None:
        self.engine.backlogged = False

    def stopProducing(self) -> None:
        pass


class EngineState(enum.Enum):
    """
    Where the node stands with Redis.
    """

    CONNECTING = "connecting"  # never reached since start-up
    UP = "up"
    DOWN = "down"  # lost; reconnecting


class _Reporting:
    """
    A Redis connection that tells the engine when it is usable (logged in,
    its db selected) and when it is lost.
    """

    factory: Any
    _ready: bool
    ready_hook = ""

    def connectionMade(self) -> Any:
        d = super().connectionMade()  # type: ignore[misc]
        d.addCallback(lambda _: self._ready and getattr(self.factory.engine, self.ready_hook)(self))
        return d

    def connectionLost(self, why: Failure) -> None:
        super().connectionLost(why)  # type: ignore[misc]
        self.factory.engine._lost(self, why)


class _Commands(_Reporting, txredisapi.RedisProtocol):
    """
    The connection for commands (scripts, publishes).
    """

    ready_hook = "_commands_ready"


class _Beats(_Reporting, txredisapi.RedisProtocol):
    """
    The connection for heartbeats alone: Redis serves its connections in
    turn, so a beat is not held up behind a backlog of publishes on the
    command connection (a node taken for dead because it was busy).
    """

    ready_hook = "_beats_ready"


class _Subscriber(_Reporting, txredisapi.SubscriberProtocol):
    """
    The connection for subscriptions: messages, and the confirmations of
    the engine's own batched SUBSCRIBE commands, go to the engine.
    """

    ready_hook = "_subscriber_ready"

    def replyReceived(self, reply: Any) -> None:
        if isinstance(reply, list) and len(reply) == 3:
            kind = reply[0]
            if kind == b"message":
                self.factory.engine._message(reply[1], reply[2])
                return
            if kind in (b"subscribe", b"unsubscribe"):
                self.factory.engine._confirmed(kind, reply[1])
                return
        if isinstance(reply, list) and reply and reply[0] == b"pong":
            self.factory.engine._ponged()
            return
        super().replyReceived(reply)

    def send_command(self, *args: Any) -> None:
        self.transport.write(self._build_command(*args))


def _tcp(protocol: Any) -> Any:
    """
    The TCP connection under C{protocol} (under TLS, if any), with Nagle's
    algorithm off, as Redis' own clients do: a command waits for no
    acknowledgement of the one before.
    """
    transport = protocol.transport
    if isinstance(transport, TLSMemoryBIOProtocol):
        transport = transport.transport
    transport.setTcpNoDelay(True)
    return transport


def _factory(protocol: type, address: RedisAddress, engine: RedisEngine, charset: str | None) -> Any:
    factory = txredisapi.RedisFactory(
        str(address), address.db or None, 1, isLazy=True, charset=charset,
        password=address.password, replyTimeout=REPLY_TIMEOUT,
        convertNumbers=True, username=address.username,
    )
    factory.protocol = protocol
    factory.engine = engine
    factory.initialDelay = 0.2
    factory.maxDelay = 5
    factory.noisy = False
    return factory


def _endpoint(address: RedisAddress, reactor: Any) -> Any:
    """
    Where to connect: a hostname endpoint, wrapped in TLS (verifying the
    server's certificate against the system's CAs) for C{rediss://}.
    """
    endpoint = HostnameEndpoint(reactor, address.host, address.port, timeout=CONNECT_TIMEOUT)
    if address.tls:
        endpoint = wrapClientTLS(ssl.optionsForClientTLS(address.host), endpoint)
    return endpoint


@implementer(IEngine)
class RedisEngine(Service):
    """
    One node of a cluster on Redis (see the module's docstring for what
    goes where).  It is a service of the daemon: started before the
    listeners, stopped after every client is gone.
    """

    log = Logger()

    def __init__(
        self, address: RedisAddress, node: str, clock: IReactorTime, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self.name = str(address)
        self.address = address
        self.node = node
        self.keys = Keys(prefix)
        self.clock = clock
        self.state = EngineState.CONNECTING
        self.server: Any = None
        self._commands: Any = None
        self._beats: Any = None
        self._subscriber: Any = None
        # Confirmations still owed for the SUBSCRIBE sent on the subscriber
        # connection's arrival: the engine is up once they are all in.
        self._resubscribing = 0
        self._factories: list[Any] = []
        self._up_waiters: list[Deferred[None]] = []
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = clock
        self._subscriptions = Subscriptions()
        self._unconfirmed: dict[str, list[Deferred[None]]] = {}
        self._sequences = Sequences()
        self.gaps = GapCounter()
        self.liveness = Liveness(grace=DEAD_MS / 1000 + 2 * BEAT)
        self.backlogged = False
        self._beats_since_up = 0
        self._last_beat_ok = 0.0
        self._sub_ping_sent: float | None = None
        self._forsaken: set[tuple[str, str]] = set()  # (node, route) to tell "gone"
        self._pending: dict[str, list[bytes]] = {}  # channel -> frames this turn
        self._batches: dict[str, NodeBatch] = {}  # node -> what it is owed
        self._flush_call: Any = None
        self._routes: dict[str, Session] = {}  # route -> local session known elsewhere
        self._links: dict[Session, set[str]] = {}  # local session -> nodes that know it
        self._plays: dict[Session, tuple[str, str]] = {}  # local session -> (lobby, owner)
        self._watches: dict[Session, tuple[str, str]] = {}
        self._queued: dict[Session, str] = {}  # local session -> queue entry
        self._proxies: dict[tuple[str, str], RemoteSession] = {}
        self._claims: dict[int, _Claim] = {}
        self._arrivals: list[_Arrival] = []  # this turn's queue requests
        # local session -> (node, claim id, entry): promised to a lobby
        # forming there, out of the queue until it is seated or released
        self._promised: dict[Session, tuple[str, Any, str]] = {}
        self._listed: set[str] = set()  # lobbies here listed in Redis
        self._unanswered: dict[Session, Any] = {}  # queue requests Redis has not answered
        self._claim_ids = itertools.count(1)
        self.dropped_batches = 0

    # Wiring

    def attach(self, server: Any) -> None:
        self.server = server
        server.engine = self
        server.router = self
        server.hub.relay = self
        server.lobbies.cluster = self
        server.lobbies.id_prefix = self.node + "."

    @property
    def up(self) -> bool:
        return self.state is EngineState.UP

    def _unavailable(self, what: str) -> ProtocolError:
        return ProtocolError(
            ENGINE_UNAVAILABLE,
            f"{what} needs the engine (Redis), which this node cannot reach "
            "now; it is reconnecting: try again in a moment",
        )

    def _when_up(self, what: str) -> Deferred[None]:
        if self.state is EngineState.UP:
            return succeed(None)
        if self.state is EngineState.CONNECTING:
            d: Deferred[None] = Deferred()
            self._up_waiters.append(d)
            return d
        return fail(self._unavailable(what))

    # Life cycle

    def startService(self) -> None:
        super().startService()
        for protocol, charset in ((_Commands, "utf-8"), (_Beats, "utf-8"), (_Subscriber, None)):
            factory = _factory(protocol, self.address, self, charset)
            factory.startConnecting(_endpoint(self.address, self.clock))
            self._factories.append(factory)

    def stop(self) -> Deferred[None]:
        """
        Leave the cluster at once: send what is owed, take this node's queue
        entries and games' listings out of Redis, and disconnect.
        """
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        super().stopService()
        if self._beat.running:
            self._beat.stop()
        self._flush()
        if self.up:
            try:
                await self._purge(self.node).addTimeout(STOP_TIMEOUT, self.clock)
            except Exception as e:
                self.log.warn("engine: could not clean up in Redis: {e}", e=e)
        for factory in self._factories:
            try:
                await factory.disconnect().addTimeout(STOP_TIMEOUT, self.clock)
            except Exception:
                pass  # (the process ends anyway)

    def _beats_ready(self, protocol: Any) -> None:
        _tcp(protocol)
        self._beats = protocol
        self._maybe_up()

    def _commands_ready(self, protocol: Any) -> None:
        self._commands = protocol
        # Past this much unsent output, Redis is not keeping up: what would
        # go to other nodes is refused (engine_unavailable) rather than
        # held in memory without end.
        transport = _tcp(protocol)
        transport.bufferSize = MAX_BACKLOG
        transport.registerProducer(_Backlog(self), True)
        self._maybe_up()

    def _subscriber_ready(self, protocol: Any) -> None:
        self._subscriber = protocol
        _tcp(protocol)
        channels = [self.keys.inbox(self.node)]
        channels += [self.keys.channel(name) for name in self._subscriptions.everything()]
        self._resubscribing = len(channels)
        protocol.send_command("SUBSCRIBE", *channels)

    def _maybe_up(self) -> None:
        if (
            self._commands is None or self._beats is None or self._subscriber is None
            or self._resubscribing or self.state is EngineState.UP
        ):
            return
        was = self.state
        self.state = EngineState.UP
        self.backlogged = False
        self._beats_since_up = 0
        self._last_beat_ok = self.clock.seconds()
        self._sub_ping_sent = None
        self.liveness.reconnected(self.clock.seconds())
        if was is EngineState.CONNECTING:
            self.log.info(
                "engine: node {node} of the cluster on {redis} (prefix {prefix})",
                node=self.node, redis=str(self.address), prefix=self.keys.prefix,
            )
        else:
            self.log.info(
                "engine: Redis is back; {channels} subscription(s) and {queued} "
                "queue entr(ies) restored",
                channels=len(self._subscriptions.active), queued=len(self._queued),
            )
            self._restore_members()
            self._restore_queue()
            for node, route in self._forsaken:
                self._to_node(node, route, {"op": "gone"})
            self._forsaken.clear()
        waiters, self._up_waiters = self._up_waiters, []
        for d in waiters:
            d.callback(None)
        self._schedule()  # (what waited for Redis)
        if self.running and not self._beat.running:
            self._beat.start(BEAT, now=True)

    def _lost(self, protocol: Any, why: Failure) -> None:
        if protocol is self._commands:
            self._commands = None
        elif protocol is self._beats:
            self._beats = None
        elif protocol is self._subscriber:
            self._subscriber = None
            self._resubscribing = 0
            for waiters in self._unconfirmed.values():
                for d in waiters:
                    d.callback(None)  # answered now; restored with the rest
            self._unconfirmed.clear()
        else:
            return
        if self.state is EngineState.UP:
            self.state = EngineState.DOWN
            self.dropped_batches += len(self._batches)
            self._batches.clear()
            self._pending.clear()
            if self.running:
                self.log.warn(
                    "engine: lost Redis ({reason}); clients stay connected and "
                    "local traffic goes on, what needs Redis answers "
                    "engine_unavailable until it is back",
                    reason=why.getErrorMessage(),
                )
            if self._beat.running:
                self._beat.stop()
            self._cut_off()

    def _cut_off(self) -> None:
        """
        Redis is gone, and with it every frame between this node and the
        others: games across nodes cannot go on.  The games run elsewhere
        end for the players here (C{node_lost}: their node is out of reach)
        and, once Redis is back, their nodes are told these players are
        gone; the players of other nodes in games here are taken for
        disconnected (their seats are held, as for any lost connection).
        """
        for session, links in self._links.items():
            self._forsaken.update((node, session.route) for node in links)
        for session, (_, _, entry) in self._promised.items():
            self._queued[session] = entry  # (their lobby's word is lost)
        self._promised.clear()
        for node in self.liveness.alive - {self.node}:
            self._node_died(node, forget=False)

    def _script(self, script: str, keys: list[str], args: list[Any], via: Any = None) -> Deferred[Any]:
        connection = via or self._commands
        if connection is None:
            return fail(self._unavailable("this"))
        try:
            return connection.eval(script, keys, args)
        except Exception:
            return fail()

    # Liveness

    def _purge(self, node: str) -> Deferred[Any]:
        k = self.keys
        return self._script(
            PURGE_SCRIPT,
            [k.nodes, k.node_info, k.queue, k.entries, k.games, k.node_channels(node)],
            [node, k.members("")],
            via=self._beats,
        )

    def _heartbeat(self) -> Deferred[Any] | None:
        if not self.up:
            return None
        try:
            self._ping_subscriber()
            self._check_own_beats()
        except Exception:  # (the beat must go on whatever happens)
            self.log.failure("engine: checking the connections failed")
        clients = len(self.server.sessions)
        d = self._script(
            BEAT_SCRIPT, [self.keys.nodes, self.keys.node_info], [self.node, clients, DEAD_MS],
            via=self._beats,
        )
        d.addCallback(self._beaten)
        d.addErrback(self._beat_failed)
        self._list_games()
        if self._queued:
            self._match_waiting()
        return None

    def _match_waiting(self) -> None:
        """
        Form the lobbies the queue allows now, though nobody joined it: a
        node whose beats came late had its entries passed over when they
        joined, and they would otherwise wait for the next arrival.
        """
        self._script(
            QUEUE_SCRIPT, self._queue_keys(), [self.server.lobbies.lobby_size, FRESH_MS, "full"]
        ).addCallback(lambda result: result[1] and self._form(result[1])).addErrback(
            lambda f: None
        )

    def _check_own_beats(self) -> None:
        """
        A node whose beats stop landing is soon taken for dead by the
        others: past half that time without an answer, its heartbeat
        connection is taken for stuck and made again.
        """
        silent = self.clock.seconds() - self._last_beat_ok
        if silent > DEAD_MS / 2000 and self._beats is not None:
            self.log.warn(
                "engine: no heartbeat answered for {seconds:.1f} s; reconnecting", seconds=silent
            )
            self._last_beat_ok = self.clock.seconds()  # (once per stall)
            self._beats.transport.abortConnection()

    def _beat_failed(self, failure: Failure) -> None:
        self.log.warn("engine: a heartbeat failed: {why}", why=failure.getErrorMessage())

    def _beaten(self, result: Any) -> None:
        self._last_beat_ok = self.clock.seconds()
        added, live, stale = result
        live = [str(n) for n in live]
        self._beats_since_up += 1
        if added and self._beats_since_up > 1:
            # The others took this node for dead (it could not beat for too
            # long): what it knew of them is void.
            self.log.warn("engine: this node was taken for dead by the others; rejoining")
            for node in list(self.liveness.alive - {self.node}):
                self._node_died(node)
            self._restore_queue()
        for node in stale:
            node = str(node)
            self._purge(node).addCallback(
                lambda gone, node=node: gone and self.log.info(
                    "engine: node {node} stopped beating; its queue entries and games "
                    "are purged", node=node
                )
            ).addErrback(lambda f: None)
        for node in self.liveness.update(live, self.clock.seconds()):
            if node != self.node:
                self._node_died(node)

    def _ping_subscriber(self) -> None:
        """
        A subscribed connection only ever reads: ping it each beat, and take
        one whose pong is overdue for dead (a half-open connection to
        Redis would otherwise go unnoticed forever).
        """
        subscriber = self._subscriber
        if subscriber is None:
            return
        now = self.clock.seconds()
        if self._sub_ping_sent is not None:
            if now - self._sub_ping_sent > REPLY_TIMEOUT:
                self.log.warn("engine: Redis stopped answering; reconnecting")
                subscriber.transport.abortConnection()
            return
        self._sub_ping_sent = now
        subscriber.send_command("PING")

    def _ponged(self) -> None:
        self._sub_ping_sent = None

    def _node_died(self, node: str, forget: bool = True) -> None:
        """
        C{node} is gone: the games it ran end for the players here
        (C{node_lost}), and its players' seats in games here are held.
        """
        if forget:
            self.liveness.alive.discard(node)
            self.log.warn(
                "engine: node {node} left (stopped, or no beat for {seconds:g} s): its "
                "games end for the players here, its players' seats here are held",
                node=node, seconds=DEAD_MS / 1000,
            )
        self.gaps.forget_node(node)
        self._batches.pop(node, None)
        for table in (self._plays, self._watches):
            for session, (channel, owner) in list(table.items()):
                if owner == node:
                    del table[session]
                    if table is self._plays:
                        session.send(encode_frame(channel, GameOver(NODE_LOST).to_payload()))
                    session.send(encode_frame(channel, {"type": "closed"}))
        for links in self._links.values():
            links.discard(node)
        for session, (promised_to, _, _) in list(self._promised.items()):
            if promised_to == node:  # its lobby died with that node: queue again
                del self._promised[session]
                if forget:
                    self.enqueue(session, quiet=True).addErrback(lambda f: None)
        for key, proxy in list(self._proxies.items()):
            if key[0] == node:
                del self._proxies[key]
                proxy.connection_lost()

    # Channels (called by the hub)

    def opened(self, name: str) -> None:
        if self._subscriptions.opened(name):
            self._unconfirmed.setdefault(name, [])
            self._schedule()

    def closed(self, name: str) -> None:
        self._subscriptions.closed(name)
        self.gaps.forget_channel(name)
        self._schedule()

    def _confirmed(self, kind: bytes, key: bytes) -> None:
        if kind == b"subscribe" and self._resubscribing:
            # (The subscriber connection's first SUBSCRIBE: once Redis has
            # confirmed every channel, nothing published is missed.  Redis
            # answers a connection's commands in order, so the first
            # confirmations are that command's, whatever was sent after.)
            self._resubscribing -= 1
            if not self._resubscribing:
                self._maybe_up()
        prefix = self.keys.channel("").encode()
        if kind == b"subscribe" and key.startswith(prefix):
            for d in self._unconfirmed.pop(key[len(prefix):].decode(), ()):
                d.callback(None)

    def published(self, name: str, frame: bytes) -> None:
        """
        A message was published here on channel C{name}: other nodes get it
        with this turn's others.

        @raise ProtocolError: C{engine_unavailable} if Redis is out of reach
            (the message reached this node's subscribers only).
        """
        if self.state is not EngineState.UP or self.backlogged:
            raise ProtocolError(
                ENGINE_UNAVAILABLE,
                f"the message reached the subscribers of {name} on this node, but "
                "not those on other nodes: the engine (Redis) is out of reach "
                "or not keeping up now",
                name,
            )
        pending = self._pending.get(name)
        if pending is None:
            self._pending[name] = [frame]
            self._schedule()
        else:
            pending.append(frame)

    def presence(self, name: str, payload: dict[str, Any], about: Session) -> None:
        """
        C{about} joined or parted channel C{name} here: the cluster's list
        of its members says so, and the members of other nodes who asked
        for presence get the frame.
        """
        if self.state is not EngineState.UP:
            return
        self._member(name, about, joined=payload["type"] == "joined")
        frame = encode_frame(name, payload)
        self._publish_pending(name)
        epoch, seq = self._sequences.next(name)
        self._publish(self.keys.channel(name), encode_channel_message(self.node, epoch, seq, PRESENCE, frame))

    def _member(self, name: str, member: Session, joined: bool) -> None:
        field = f"{self.node}|{member.route}"
        if joined:
            d = self._script(
                JOIN_SCRIPT,
                [self.keys.members(name), self.keys.node_channels(self.node)],
                [field, json.dumps([member.client_id, member.name]), name],
            )
        else:
            d = self._command("HDEL", self.keys.members(name), field)
        d.addErrback(lambda f: None)

    def _command(self, *args: Any) -> Deferred[Any]:
        if self._commands is None:
            return fail(self._unavailable("this"))
        try:
            return self._commands.execute_command(*args)
        except Exception:
            return fail()

    def subscribed(self, name: str) -> Deferred[int] | None:
        """
        How many members channel C{name} has on every node, once Redis
        delivers its messages here (L{None} if Redis is out of reach: the
        caller answers with the count here, and the subscription is
        restored on reconnection).
        """
        if self.state is not EngineState.UP:
            return None
        waiters = self._unconfirmed.get(name)
        d: Deferred[None] = succeed(None)
        if waiters is not None:
            d = Deferred()
            waiters.append(d)
        return d.addCallback(lambda _: self._command("HLEN", self.keys.members(name)))

    def who(self, name: str) -> Deferred[dict[str, Any]]:
        """
        The members of ordinary channel C{name} on every node, for a
        C{members} answer.
        """

        def listed(fields: dict[Any, Any]) -> dict[str, Any]:
            members = []
            for text in _as_dict(fields).values():
                client, member_name = json.loads(text)
                members.append({"client": client, "name": member_name})
            members.sort(key=lambda m: m["client"])
            return {"count": len(members), "members": members[:MAX_LISTED]}

        return self._when_up("who").addCallback(
            lambda _: self._command("HGETALL", self.keys.members(name))
        ).addCallback(listed)

    def _publish_pending(self, name: str) -> None:
        frames = self._pending.pop(name, None)
        if frames:
            epoch, seq = self._sequences.next(name)
            self._publish(
                self.keys.channel(name),
                encode_channel_message(self.node, epoch, seq, MESSAGE, b"".join(frames)),
            )

    def _publish(self, key: str, message: bytes) -> None:
        self._command("PUBLISH", key, message).addErrback(self._publish_failed)

    def _publish_failed(self, failure: Failure) -> None:
        self.log.debug("engine: publish failed: {f}", f=failure.getErrorMessage())

    def _message(self, key: bytes, message: bytes) -> None:
        try:
            if key == self.keys.inbox(self.node).encode():
                self._inbox(*decode_node_message(message))
                return
            node, epoch, seq, kind, frames = decode_channel_message(message)
        except Exception:
            self.log.failure("engine: a message on {key} could not be read", key=key)
            return
        if node == self.node:
            return  # our own, already delivered here
        name = key[len(self.keys.channel("")):].decode()
        missed = self.gaps.seen(node, name, epoch, seq)
        if missed:
            self.log.warn(
                "engine: {missed} message(s) from node {node} on {channel} were lost "
                "(Redis dropped them while this node was reconnecting)",
                missed=missed, node=node, channel=name,
            )
        self.server.hub.deliver(name, frames, presence=kind == PRESENCE)

    # Sending to other nodes

    def _schedule(self) -> None:
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        if self._subscriber is not None:
            sub, unsub = self._subscriptions.take()
            if sub:
                self._subscriber.send_command("SUBSCRIBE", *map(self.keys.channel, sub))
            if unsub:
                self._subscriber.send_command("UNSUBSCRIBE", *map(self.keys.channel, unsub))
        if self._arrivals:
            if self.up:
                self._send_arrivals()
            elif self.state is EngineState.DOWN:
                arrivals, self._arrivals = self._arrivals, []
                for arrival in arrivals:
                    arrival.refused(Failure(self._unavailable("queueing")))
                    arrival.done.callback(None)
            # (connecting: they go once Redis is reached)
        for name in list(self._pending):
            self._publish_pending(name)
        batches, self._batches = self._batches, {}
        for node, batch in batches.items():
            self._publish(self.keys.inbox(node), batch.encode(self.node))

    def _to_node(self, node: str, route: str, record: Any) -> None:
        if self.state is not EngineState.UP:
            return
        if self.backlogged:
            self.dropped_batches += 1
            return
        batch = self._batches.get(node)
        if batch is None:
            batch = self._batches[node] = NodeBatch()
            self._schedule()
        batch.add(route, record)

    def _inbox(self, sender: str, records: list[tuple[str, Any]]) -> None:
        self.liveness.alive.add(sender)  # (it is, since it speaks)
        gone: set[str] = set()
        for route, record in records:
            if isinstance(record, dict):
                self._instruction(sender, route, record)
                continue
            session = self._routes.get(route)
            if session is None or not session.connected or sender not in self._links.get(session, ()):
                # (A session stops being linked to a node when its game
                # there was given up for lost.)
                if route not in gone:
                    gone.add(route)
                    self._to_node(sender, route, {"op": "gone"})
                continue
            if record.count(b"\n") == 1:
                session.send(record)
            else:
                for line in record.splitlines(keepends=True):
                    session.send(line)

    def _instruction(self, sender: str, route: str, record: dict[str, Any]) -> None:
        op = record.get("op")
        if op == "frame":  # a frame for a game here, from a client there
            proxy = self._proxies.get((sender, route))
            if proxy is None:
                proxy = self._proxy(sender, route, str(record["client"]), str(record["name"]))
            proxy.line_received(str(record["line"]).encode())
            return
        if op == "claimed":
            self._claimed(sender, route, record)
            return
        if op == "gone":  # that client's connection is gone
            proxy = self._proxies.pop((sender, route), None)
            if proxy is not None:
                proxy.connection_lost()
            return
        session = self._routes.get(route)
        if op == "claim":  # is it still there, and waiting?
            ok = session is not None and session.connected and session in self._queued
            if ok:
                # Promised to that lobby: no other may have it meanwhile.
                self._promised[session] = (sender, record.get("id"), self._queued.pop(session))
            self._to_node(sender, route, {"op": "claimed", "id": record.get("id"), "ok": ok})
            return
        if session is None:
            if op in ("seat", "watch"):
                self._to_node(sender, route, {"op": "gone"})
            return
        if op in ("release", "unclaimed"):
            promise = self._promised.get(session)
            if promise is not None and promise[:2] == (sender, record.get("id")):
                del self._promised[session]
                self._queued[session] = promise[2]
            if op == "unclaimed" and session in self._queued:
                # (Its entry is gone from Redis: it queues again.)
                del self._queued[session]
                self.enqueue(session, quiet=True).addErrback(lambda f: None)
        elif op == "seat":  # it plays in a game there
            self._queued.pop(session, None)
            self._promised.pop(session, None)
            say_queued = self._unanswered.get(session)
            if say_queued is not None:
                say_queued(self.server.lobbies.lobby_size)
            client = str(record["client"])
            if client != session.client_id:
                self.server.adopt(session, client)
                session.name = str(record["name"])
            self._plays[session] = (str(record["channel"]), sender)
            self._links.setdefault(session, set()).add(sender)
        elif op == "unseat":
            if self._plays.get(session, ("", ""))[0] == record.get("channel"):
                del self._plays[session]
        elif op == "watch":
            self._watches[session] = (str(record["channel"]), sender)
            self._links.setdefault(session, set()).add(sender)
        elif op == "unwatch":
            if self._watches.get(session, ("", ""))[0] == record.get("channel"):
                del self._watches[session]
        elif op == "disconnect":
            session.disconnect()

    def _proxy(self, node: str, route: str, client_id: str, name: str) -> RemoteSession:
        proxy = RemoteSession(
            client_id,
            self.server,
            lambda owed: self._to_node(node, route, owed),
            lambda: self._to_node(node, route, {"op": "disconnect"}),
            name=name,
            node=node,
        )
        proxy.route = route
        self._proxies[(node, route)] = proxy
        return proxy

    # Routing (called by sessions)

    def forward(self, session: Session, frame: Frame, line: bytes) -> bool:
        """
        Send C{frame} to the node that owns what it is about (a game's
        lobby channel, or a resume token), if that is another node.

        @return: whether it was sent away (else it is handled here).
        @raise ProtocolError: if it cannot be.
        """
        channel = frame.channel
        if channel == CONTROL:
            if frame.type != "resume":
                return False
            token = frame.body.get("token")
            owner = owner_of(token) if isinstance(token, str) else None
            if owner is None or owner == self.node:
                return False
            if session in self._plays or self.server.lobbies.lobby_of(session) is not None:
                raise ProtocolError(IN_GAME, "you are in a running game; finish it before resuming another")
            refusal = ProtocolError(
                BAD_TOKEN,
                "this resume token is unknown, already used, or for a game that is "
                "over; queue for a new game",
            )
        elif is_lobby_name(channel):
            owner = owner_of(channel)
            if owner is None or owner == self.node:
                return False
            refusal = ProtocolError(FORBIDDEN, f"{channel} is not a game you play or watch")
        else:
            return False
        if not self.up:
            raise self._unavailable("this game")
        if owner not in self.liveness.alive and owner not in self._links.get(session, ()):
            raise refusal
        self._routes[session.route] = session
        self._links.setdefault(session, set()).add(owner)
        self._to_node(owner, session.route, {
            "op": "frame", "line": line.decode("utf-8"),
            "client": session.client_id, "name": session.name,
        })
        return True

    def forget(self, session: Session) -> None:
        if isinstance(session, RemoteSession):
            self._proxies.pop((session.node, session.route), None)
            return
        self.dequeue(session)
        for node in self._links.pop(session, ()):
            self._to_node(node, session.route, {"op": "gone"})
        self._routes.pop(session.route, None)
        self._unanswered.pop(session, None)
        self._promised.pop(session, None)
        self._plays.pop(session, None)
        self._watches.pop(session, None)

    def plays(self, session: Session) -> bool:
        return session in self._plays

    # Lobby hooks (called by the lobby service for every seat; only those of
    # other nodes' clients need telling)

    def seated(self, player: Any, lobby: Any) -> None:
        if isinstance(player, RemoteSession):
            self._to_node(player.node, player.route, {
                "op": "seat", "channel": lobby.channel,
                "client": player.client_id, "name": player.name,
            })

    def unseated(self, player: Any, lobby: Any) -> None:
        if isinstance(player, RemoteSession):
            self._to_node(player.node, player.route, {"op": "unseat", "channel": lobby.channel})
            self._retire(player)

    def watched(self, watcher: Any, lobby: Any) -> None:
        if isinstance(watcher, RemoteSession):
            self._to_node(watcher.node, watcher.route, {"op": "watch", "channel": lobby.channel})

    def unwatched(self, watcher: Any, lobby: Any) -> None:
        if isinstance(watcher, RemoteSession):
            self._to_node(watcher.node, watcher.route, {"op": "unwatch", "channel": lobby.channel})
            self._retire(watcher)

    def _retire(self, proxy: RemoteSession) -> None:
        lobbies = self.server.lobbies
        if lobbies.lobby_of(proxy) is None and not lobbies.watching(proxy):
            self._proxies.pop((proxy.node, proxy.route), None)

    # The queue

    def queued(self, session: Session) -> bool:
        return session in self._queued or session in self._promised

    @property
    def waiting(self) -> int:
        return len(self._queued) + len(self._promised)

    def _entry(self, session: Session) -> str:
        return f"{self.node}|{session.route}"

    def _info(self, session: Session) -> str:
        return json.dumps([session.client_id, session.name])

    def _queue_keys(self) -> list[str]:
        k = self.keys
        return [k.queue, k.arrivals, k.entries, k.nodes]

    def enqueue(self, player: Session, frame_id: Any = None, quiet: bool = False) -> Deferred[None]:
        """
        Put C{player} in the cluster's queue; answer C{queued} (unless
        C{quiet}: an entry put back after Redis came back), and form a lobby
        here if this made one.
        """
        lobbies = self.server.lobbies
        entry = self._entry(player)
        self._queued[player] = entry
        self._routes[player.route] = player

        def say_queued(waiting: int) -> None:
            if self._unanswered.pop(player, None) is not None and player.connected and not quiet:
                player.send(encode_frame(CONTROL, with_id({
                    "type": "queued", "waiting": min(waiting, lobbies.lobby_size),
                    "lobby_size": lobbies.lobby_size,
                }, frame_id)))

        # (Said at the latest before "matched": the lobby may be formed by
        # another node, whose word can come before Redis' answer here.)
        self._unanswered[player] = say_queued

        def refused(failure: Failure) -> None:
            self._unanswered.pop(player, None)
            if self._queued.get(player) == entry:
                del self._queued[player]
            error = failure.value if failure.check(ProtocolError) else self._unavailable("queueing")
            player.send_error(ProtocolError(error.code, error.message, CONTROL, frame_id))

        arrival = _Arrival(entry, self._info(player), say_queued, refused, Deferred())

        def join(_: None) -> Deferred[None]:
            # One turn's arrivals go to Redis as one script call.
            if not self._arrivals:
                self._schedule()
            self._arrivals.append(arrival)
            return arrival.done

        return self._when_up("queueing").addCallbacks(join, refused)

    def _send_arrivals(self) -> None:
        arrivals, self._arrivals = self._arrivals, []
        args: list[Any] = [self.server.lobbies.lobby_size, FRESH_MS, "full"]
        for arrival in arrivals:
            args += [arrival.entry, arrival.info]

        def answered(result: Any) -> None:
            waitings, taken = result
            for arrival, waiting in zip(arrivals, waitings):
                arrival.say_queued(int(waiting))
                arrival.done.callback(None)
            if taken:
                self._form(taken)

        def failed(failure: Failure) -> None:
            for arrival in arrivals:
                arrival.refused(failure)
                arrival.done.callback(None)

        self._script(QUEUE_SCRIPT, self._queue_keys(), args).addCallbacks(answered, failed)

    def dequeue(self, player: Session) -> None:
        # (One promised to a lobby forming on another node is in it: too
        # late to leave.)
        entry = self._queued.pop(player, None)
        if entry is not None and self.up:
            self._script(REMOVE_SCRIPT, [self.keys.queue, self.keys.entries], [entry]).addErrback(
                lambda f: None
            )

    def renamed(self, player: Session) -> None:
        entry = self._queued.get(player)
        if entry is not None and self.up:
            self._script(
                RENAME_SCRIPT, [self.keys.queue, self.keys.entries], [entry, self._info(player)]
            ).addErrback(lambda f: None)

    def take_for_bots(self, player: Session) -> Deferred[list[Session]]:
        """
        The players at the front of the queue (up to a lobby's worth), for
        a lobby that bots complete.
        """
        if player not in self._queued or not self.up:
            return succeed([])
        d = self._script(QUEUE_SCRIPT, self._queue_keys(), [self.server.lobbies.lobby_size, FRESH_MS, "any"])
        return d.addCallback(lambda result: self._claim(result[1])).addCallback(
            lambda players: players or []
        )

    def _restore_members(self) -> None:
        hub = self.server.hub
        for name in self._subscriptions.active:
            channel = hub.get(name)
            for member in tuple(channel.members) if channel is not None else ():
                self._member(name, member, joined=True)

    def _restore_queue(self) -> None:
        for player in list(self._queued):
            del self._queued[player]
            if player.connected:
                self.enqueue(player, quiet=True).addErrback(lambda f: None)

    def _claim(self, taken: list[Any]) -> Deferred[list[Session] | None]:
        """
        The players for queue entries just taken (C{[entry, score, info,
        ...]}): this node's sessions, and proxies for other nodes' clients,
        once each of those nodes has confirmed its clients are still there
        and waiting.  A node that does not answer within L{CLAIM_TIMEOUT}
        (it died, and nobody has noticed yet) loses its entries.  If anyone
        is missing, L{None}: the others are put back at their places.
        """
        entries = []
        for i in range(0, len(taken), 3):
            entry, score, info = (str(x) for x in taken[i: i + 3])
            node, _, route = entry.partition("|")
            client, name = json.loads(info) or [route, route]
            entries.append(_Entry(entry, score, info, node, route, str(client), str(name)))
        claim = _Claim(entries, Deferred())
        remote = [e for e in entries if e.node != self.node]
        if not remote:
            self._settle(claim)
            return claim.done
        claim_id = next(self._claim_ids)
        self._claims[claim_id] = claim
        for e in remote:
            self._to_node(e.node, e.route, {"op": "claim", "id": claim_id})
        claim.timer = self.clock.callLater(CLAIM_TIMEOUT, self._claim_expired, claim_id)
        return claim.done

    def _claimed(self, sender: str, route: str, record: dict[str, Any]) -> None:
        claim = self._claims.get(record.get("id"))  # type: ignore[arg-type]
        if claim is None:
            return
        claim.answers[(sender, route)] = record.get("ok") is True
        if len(claim.answers) == sum(1 for e in claim.entries if e.node != self.node):
            del self._claims[record["id"]]
            if claim.timer is not None and claim.timer.active():
                claim.timer.cancel()
            self._settle(claim, record["id"])

    def _claim_expired(self, claim_id: int) -> None:
        claim = self._claims.pop(claim_id, None)
        if claim is not None:
            self._settle(claim, claim_id)

    def _settle(self, claim: _Claim, claim_id: int = 0) -> None:
        here: dict[_Entry, Session] = {}
        missing = []
        for e in claim.entries:
            if e.node == self.node:
                session = self._routes.get(e.route)
                if session is None or not session.connected or session not in self._queued:
                    missing.append(e)
                else:
                    here[e] = session
            elif not claim.answers.get((e.node, e.route)):
                missing.append(e)
        if not missing:
            players: list[Session] = []
            for e in claim.entries:
                if e in here:
                    del self._queued[here[e]]
                    players.append(here[e])
                else:
                    players.append(self._fresh_proxy(e))
            claim.done.callback(players)
            return
        # Someone is missing: the others go back where they were, and the
        # nodes that promised theirs take them back.
        back: list[str] = []
        for e in claim.entries:
            if e in missing:
                if e.node != self.node and (e.node, e.route) not in claim.answers:
                    # Silent: if it was only slow, it queues them again.
                    self._to_node(e.node, e.route, {"op": "unclaimed", "id": claim_id})
                continue
            back += [e.entry, e.score, e.info]
            if e.node != self.node:
                self._to_node(e.node, e.route, {"op": "release", "id": claim_id})
        if back:
            self._script(RESTORE_SCRIPT, [self.keys.queue, self.keys.entries], back).addErrback(
                lambda f: None
            )
        claim.done.callback(None)

    def _fresh_proxy(self, e: _Entry) -> RemoteSession:
        """
        The proxy of a client its node just confirmed as waiting in the
        queue.  One left from before that still sits in a game here (its
        node gave that game up for lost, and says so later) is taken for
        disconnected: a client plays in one lobby at a time.
        """
        old = self._proxies.get((e.node, e.route))
        if old is not None:
            lobbies = self.server.lobbies
            if lobbies.lobby_of(old) is None and not lobbies.watching(old):
                return old
            del self._proxies[(e.node, e.route)]
            old.connection_lost()
        return self._proxy(e.node, e.route, e.client, e.name)

    def _form(self, taken: list[Any]) -> None:
        """
        Form the lobbies of the entries just taken (a lobby's worth after
        another), once their players are claimed.
        """

        def form(players: list[Session] | None) -> None:
            if players:
                self.server.lobbies.form(tuple(players))

        step = 3 * self.server.lobbies.lobby_size
        for start in range(0, len(taken), step):
            self._claim(taken[start: start + step]).addCallback(form)

    # Games listing (for "games" and "watch" on any node)

    # (A game is listed with the others at the next beat: one over by then
    # was never worth watching, and costs Redis nothing.)

    def unlisted(self, lobby: Any) -> None:
        if self.up and lobby.channel in self._listed:
            self._listed.discard(lobby.channel)
            self._command("HDEL", self.keys.games, lobby.channel).addErrback(lambda f: None)

    def _list_games(self) -> None:
        lobbies = self.server.lobbies
        if not self.up or not lobbies.lobbies:
            return
        args = []
        for listing in lobbies.local_games():
            args += [listing["channel"], json.dumps(listing)]
            self._listed.add(listing["channel"])
        self._command("HSET", self.keys.games, *args).addErrback(lambda f: None)

    def games(self) -> Deferred[list[dict[str, Any]]]:
        """
        The running games of every node, newest first (with when they
        started, as L{LobbyService.local_games} has them).
        """
        lobbies = self.server.lobbies

        def fetch(_: None) -> Deferred[Any]:
            return self._command("HGETALL", self.keys.games)

        def merge(stored: dict[str, str]) -> list[dict[str, Any]]:
            games = {g["channel"]: g for g in lobbies.local_games()}
            for channel, text in _as_dict(stored).items():
                if channel not in games and owner_of(channel) in self.liveness.alive:
                    games[channel] = json.loads(text)
            return sorted(games.values(), key=lambda g: g.get("started", 0), reverse=True)

        return self._when_up("listing games").addCallback(fetch).addCallback(merge)

    # Stats

    def stats(self) -> Deferred[dict[str, Any]]:
        def ask(_: None) -> Deferred[Any]:
            return self._script(
                STATS_SCRIPT, [self.keys.nodes, self.keys.node_info, self.keys.queue],
                [self.node, len(self.server.sessions), DEAD_MS],
            )

        def figures(result: Any) -> dict[str, Any]:
            nodes, clients, queued = (int(x) for x in result)
            return {"nodes": nodes, "cluster_clients": clients, "queued": queued}

        return self._when_up("stats").addCallback(ask).addCallback(figures)


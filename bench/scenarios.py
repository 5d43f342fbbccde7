"""
The load generator: one asyncio coroutine per scenario, each talking to one
running server over loopback and returning its figures.

The client side stays off the critical path: connections are plain asyncio
protocols that count delivered messages by their end markers in large reads
(see L{dialects}) and only parse the sampled messages that carry a send
time.  The game scenarios, which soukets alone runs, read whole frames.

Every loop is bounded in count, and every wait in time (L{DEADLINE}); a lost,
extra or out-of-order message fails the run.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import time
from typing import Any, Callable

from dialects import MEASURED, WARMUP, Dialect
from servers import RunningServer, core_ticks, listen_overflows

DEADLINE = 120.0  # seconds any one phase of a scenario may take
SAMPLE = 50  # one message in SAMPLE carries its send time
PAYLOAD_SIZE = 100
CONNECT_BATCH = 250  # connections opened at once
PACED_LEVELS = (0.25, 0.5, 0.8)  # pairs' paced loads, in parts of the reference rate
_SEQUENCE = re.compile(rb"\|(\d+)[@|]")


class BenchFailure(Exception):
    """
    A run whose traffic was wrong (lost, extra or reordered messages, a
    dropped connection, a phase past its deadline): it has no figures.
    """


def payload(seq: int, kind: str = MEASURED, stamp: bool = False) -> str:
    """
    A payload of about L{PAYLOAD_SIZE} ASCII bytes: C{|seq|} (or
    C{|seq@time|} when C{stamp}; C{|w|} for a warm-up message, which has no
    place in the sequence) padded with C{x}, ending with C{kind}'s marker.
    """
    if kind == WARMUP:
        head = "|w|"
    else:
        head = f"|{seq}@{time.perf_counter():.6f}|" if stamp else f"|{seq}|"
    return head + "x" * (PAYLOAD_SIZE - len(head) - 1) + kind


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    """
    p50, p99 and max of C{values} (seconds), in milliseconds.
    """
    if not values:
        raise BenchFailure("no latency samples")
    values = sorted(values)
    return {
        "p50_ms": values[len(values) // 2] * scale,
        "p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))] * scale,
        "max_ms": values[-1] * scale,
    }


async def within(awaitable: Any, what: str, timeout: float = DEADLINE) -> Any:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise BenchFailure(f"{what} took more than {timeout:.0f} s") from None


class Counting(asyncio.Protocol):
    """
    A connection that counts the measured and warm-up messages delivered to
    it, by their markers, and calls C{on_read(self, measured)} after each
    read that brought measured messages.  It fails on sampled messages out
    of order; with C{check_order}, it also reads the sequence number of
    every message and fails on a gap or a reordering.
    """

    def __init__(self, dialect: Dialect, on_read: Callable | None = None,
                 check_order: bool = False) -> None:
        self.dialect = dialect
        self._measured = dialect.marker(MEASURED)
        self._warmup = dialect.marker(WARMUP)
        self.on_read = on_read
        self.check_order = check_order
        self.measured = 0
        self.warm = 0
        self.warming = True  # count warm-up messages too
        self.received_any = False
        self.first_at = 0.0  # when the first bytes came (a greeting)
        self.latencies: list[float] = []
        self.last_seq = -1
        self.last_sample = -1
        self.error: BaseException | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self._tail = b""
        # Over WebSocket: done once the server's 101 answer is in.
        self.upgraded = (asyncio.get_running_loop().create_future()
                         if dialect.hello.startswith(b"GET ") else None)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.dialect.hello:
            transport.write(self.dialect.hello)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.received_any:
            self.first_at = now
        self.received_any = True
        if self.upgraded is not None and not self.upgraded.done():
            if b"\r\n\r\n" in self._tail + data:  # the end of the 101 answer
                self.upgraded.set_result(None)
        if self._tail:
            data = self._tail + data
        # Count only up to the end of the last whole message; keep the rest.
        # (Each pass over a large read costs: warm-up markers are looked for
        # only while warming up.)
        end = data.rfind(self._measured) + len(self._measured)
        if self.warming:
            end = max(end, data.rfind(self._warmup) + len(self._warmup))
        if end < len(self._measured):  # no marker at all
            self._tail = data[-4096:]
            return
        self._tail = data[end:]
        if self.warming:
            self.warm += data.count(self._warmup, 0, end)
        measured = data.count(self._measured, 0, end)
        if not measured:
            return
        self.measured += measured
        # Sampled payloads are the only bytes with an "@": find them at C
        # speed, and parse just those (their send time, and their sequence
        # number, which must grow).
        at = data.find(b"@", 0, end)
        while at >= 0:
            seq = data[data.rfind(b"|", 0, at) + 1:at]
            stamp = data[at + 1:data.find(b"|", at, end)]
            if seq.isdigit() and stamp.replace(b".", b"").isdigit():
                self.latencies.append(now - float(stamp))
                if int(seq) <= self.last_sample and self.error is None:
                    self.error = BenchFailure(
                        f"got sampled message {int(seq)} after {self.last_sample}")
                self.last_sample = int(seq)
            at = data.find(b"@", at + 1, end)
        if self.check_order:
            for seq in _SEQUENCE.findall(data, 0, end):
                seq = int(seq)
                if seq != self.last_seq + 1 and self.error is None:
                    self.error = BenchFailure(f"got message {seq} after {self.last_seq}")
                self.last_seq = seq
        if self.on_read is not None:
            self.on_read(self, measured)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def open_connections(port: int | list[int], protocols: list[asyncio.Protocol]) -> None:
    """
    Connect every protocol in C{protocols} to 127.0.0.1:C{port},
    L{CONNECT_BATCH} at a time (given several ports, the nodes of a
    cluster, the protocols take them in turn).
    """
    loop = asyncio.get_running_loop()
    ports = port if isinstance(port, list) else [port]
    for start in range(0, len(protocols), CONNECT_BATCH):
        batch = protocols[start:start + CONNECT_BATCH]
        await within(asyncio.gather(*(
            loop.create_connection(lambda p=p: p, "127.0.0.1", ports[(start + i) % len(ports)])
            for i, p in enumerate(batch)
        )), "connecting")
    # A WebSocket client sends nothing before the server has answered its
    # upgrade request.
    upgrades = [p.upgraded for p in protocols if getattr(p, "upgraded", None) is not None]
    if upgrades:
        await within(asyncio.gather(*upgrades), "the WebSocket upgrade")


async def wait_until(condition: Callable[[], bool], what: str,
                     every: float = 0.02, action: Callable[[], None] | None = None) -> None:
    """
    Poll C{condition} until it holds (doing C{action} before each wait),
    for at most L{DEADLINE} seconds.
    """
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise BenchFailure(f"{what} took more than {DEADLINE:.0f} s")
        if action is not None:
            action()
        await asyncio.sleep(every)


def close_all(connections: list[Any]) -> None:
    for connection in connections:
        connection.transport.close()


class Usage:
    """
    CPU used by the server process and by this load generator between
    L{start} and L{stop}, as fractions of one core; how busy the server's
    core was, if it is pinned to one and the phase outlasted one of the
    kernel's 10 ms ticks (left out otherwise); and how many connections the kernel
    dropped at a full accept queue meanwhile (as C{bench/loadgen.c}
    reports them too).
    """

    def __init__(self, server: RunningServer) -> None:
        self.server = server

    def start(self) -> None:
        self.began = time.perf_counter()
        self._server = self.server.cpu_seconds()
        self._loadgen = time.process_time()
        self._core = self.server.core()
        self._core_ticks = core_ticks(self._core) if self._core is not None else None
        self._overflows = listen_overflows()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.began
        figures = {
            "elapsed_s": elapsed,
            "server_cpu": (self.server.cpu_seconds() - self._server) / elapsed,
            "loadgen_cpu": (time.process_time() - self._loadgen) / elapsed,
            "listen_overflows": listen_overflows() - self._overflows,
        }
        if self._core_ticks is not None:
            (busy0, total0), (busy, total) = self._core_ticks, core_ticks(self._core)
            if total > total0:
                figures["server_core_busy"] = (busy - busy0) / (total - total0)
        return figures


async def fanout(server: RunningServer, dialect: Dialect, subscribers: int = 100,
                 messages: int = 20000, window: int = 1000,
                 presence: bool = False) -> dict[str, float]:
    """
    C{subscribers} on one channel, one publisher sending C{messages} as fast
    as it may while staying at most C{window} messages ahead of the slowest
    subscriber.  With C{presence} (soukets only), every other subscriber
    asks to be told of joins and parts.
    """
    progress = asyncio.Event()
    subs = [Counting(dialect, lambda c, n: progress.set(), check_order=(i == 0))
            for i in range(subscribers)]
    publisher = Counting(dialect)
    # (On a cluster the subscribers take the nodes in turn, the publisher
    # is on the first.)
    await open_connections(server.ports, subs)
    await open_connections(server.port, [publisher])
    for index, sub in enumerate(subs):
        subscribe = dialect.subscribe("bench")
        if presence and index % 2:
            subscribe = subscribe.replace(b'"subscribe"}', b'"subscribe","presence":true}')
        sub.transport.write(subscribe)
    await wait_until(lambda: all(s.warm for s in subs), "subscribing",
                     action=lambda: publisher.transport.write(
                         dialect.publish("bench", payload(0, WARMUP))))
    for sub in subs:
        sub.warming = False
    usage = Usage(server)
    usage.start()
    sent = 0
    while sent < messages:
        slowest = min(s.measured for s in subs)
        allowed = min(messages, slowest + window)
        if sent >= allowed:
            progress.clear()
            await within(progress.wait(), "a delivery")
            if any(s.lost.done() for s in subs):
                raise BenchFailure("a subscriber was disconnected")
            continue
        batch = []
        for seq in range(sent, min(allowed, sent + 100)):
            batch.append(dialect.publish("bench", payload(seq, stamp=seq % SAMPLE == 0)))
        sent += len(batch)
        publisher.transport.write(b"".join(batch))
        await asyncio.sleep(0)
    await wait_until(lambda: all(s.measured >= messages for s in subs), "delivering",
                     every=0.001)
    figures = usage.stop()
    close_all([*subs, publisher])
    counts = {s.measured for s in subs}
    if counts != {messages}:
        raise BenchFailure(f"subscribers got {sorted(counts)} messages, not {messages}")
    for sub in subs:
        if sub.error is not None:
            raise sub.error
    return {
        "deliveries_per_s": subscribers * messages / figures["elapsed_s"],
        **percentiles([t for s in subs for t in s.latencies]),
        **figures,
    }


class Pair:
    """
    Two members of one channel: the pinger sends, the ponger answers each
    message it gets.  With a dialect that echoes, each member listens on
    a channel of its own and publishes on the other's.
    """

    def __init__(self, dialect: Dialect, name: str, on_pong: Callable) -> None:
        self.dialect = dialect
        if dialect.echoes:
            self.ping_inbox, self.pong_inbox = f"{name}.a", f"{name}.b"
        else:
            self.ping_inbox = self.pong_inbox = name
        self.ping = Counting(dialect, lambda conn, n: on_pong(self, n))
        self.pong = Counting(dialect, self._answer)
        self.sent_at = 0.0
        self.answered_warmups = 0

    def _answer(self, conn: Counting, measured: int) -> None:
        for _ in range(measured):
            conn.transport.write(self.dialect.publish(self.ping_inbox, payload(conn.measured)))

    def subscribe(self) -> None:
        self.ping.transport.write(self.dialect.subscribe(self.ping_inbox))
        self.pong.transport.write(self.dialect.subscribe(self.pong_inbox))

    def warm_up(self) -> None:
        """
        Answer the warm-up messages the ponger got; send one more if the
        pinger has had none back yet.
        """
        for _ in range(self.pong.warm - self.answered_warmups):
            self.pong.transport.write(self.dialect.publish(self.ping_inbox, payload(0, WARMUP)))
        self.answered_warmups = self.pong.warm
        if not self.ping.warm:
            self.ping.transport.write(self.dialect.publish(self.pong_inbox, payload(0, WARMUP)))

    def send_ping(self) -> None:
        self.sent_at = time.perf_counter()
        self.ping.transport.write(self.dialect.publish(self.pong_inbox, payload(self.ping.measured)))


async def pairs(server: RunningServer, dialect: Dialect, channels: int = 500,
                exchanges: int = 200, reference_rate: float | None = None,
                paced_levels: tuple[float, ...] = PACED_LEVELS,
                paced_seconds: float = 2.0) -> dict[str, float]:
    """
    C{channels} channels of two members playing ping-pong over publish.

    First flat out: every pinger sends its next ping as soon as its pong is
    back, C{exchanges} times (messages/s, and round trips, which with every
    pair busy are long by Little's law).  Then paced, at each of
    C{paced_levels} times C{reference_rate} messages/s in all (default: the
    rate just measured) for C{paced_seconds}: pings go out on a schedule,
    each from a pair with nothing in flight (round trips at that load).
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    finished = 0
    round_trips: list[float] = []
    idle: list[Pair] = []

    def flat_out(pair: Pair, measured: int) -> None:
        nonlocal finished
        round_trips.append(time.perf_counter() - pair.sent_at)
        if pair.ping.measured < exchanges:
            pair.send_ping()
        else:
            finished += 1
            if finished == channels and not done.done():
                done.set_result(None)

    def paced(pair: Pair, measured: int) -> None:
        round_trips.append(time.perf_counter() - pair.sent_at)
        idle.append(pair)

    on_pong = flat_out
    all_pairs = [Pair(dialect, f"pair{i}", lambda p, n: on_pong(p, n)) for i in range(channels)]
    members = [m for pair in all_pairs for m in (pair.ping, pair.pong)]
    await open_connections(server.port, members)
    for pair in all_pairs:
        pair.subscribe()
    await wait_until(lambda: all(p.ping.warm for p in all_pairs), "subscribing",
                     action=lambda: [p.warm_up() for p in all_pairs])
    await asyncio.sleep(0.2)  # let stray warm-up messages drain
    for member in members:
        member.warming = False

    usage = Usage(server)
    usage.start()
    for pair in all_pairs:
        pair.send_ping()
    await within(done, "the exchanges")
    figures = usage.stop()
    if any(m.measured != exchanges for m in members):
        raise BenchFailure("a member got a wrong number of messages")
    results = {"messages_per_s": 2 * channels * exchanges / figures["elapsed_s"],
               **percentiles(round_trips), **figures}

    on_pong = paced
    idle.extend(all_pairs)
    for level in paced_levels:
        rate = level * (reference_rate or results["messages_per_s"])
        round_trips = []
        sent = 0
        began = time.perf_counter()
        while (now := time.perf_counter()) - began < paced_seconds:
            owed = int((now - began) * rate / 2) - sent  # a ping makes two messages
            while owed > 0 and idle:
                idle.pop().send_ping()
                sent += 1
                owed -= 1
            await asyncio.sleep(0.0005)
        await wait_until(lambda: len(idle) == channels, "the last paced pings")
        key = f"paced{round(level * 100)}"
        results[f"{key}_rate"] = rate
        results[f"{key}_achieved"] = 2 * sent / paced_seconds
        results.update({f"{key}_{k}": v for k, v in percentiles(round_trips).items()})
    close_all(members)
    return results


async def conns(server: RunningServer, dialect: Dialect,
                connections: int = 10000) -> dict[str, float]:
    """
    C{connections} idle connections held open; the server's RSS per
    connection.  A connection counts as held once the server has its socket
    open and, if the server greets (soukets' C{welcome}, NATS' C{INFO},
    Redis' answer to C{HELLO}), once the greeting is in.
    """
    await asyncio.sleep(0.2)
    files_before = server.open_files()
    rss_before = server.rss_kib()
    held = [Counting(dialect) for _ in range(connections)]
    await open_connections(server.port, held)
    greets = dialect.name not in ("floor", "ceiling")

    def holding() -> bool:
        if any(c.lost.done() for c in held):
            # (Say so at once, rather than wait out the deadline.)
            raise BenchFailure("the server closed a connection while they were opened")
        return server.open_files() >= files_before + connections and (
            not greets or all(c.received_any for c in held))

    await wait_until(holding, "holding the connections", every=0.1)
    # Let the server settle, then read its RSS.
    await asyncio.sleep(1.0)
    rss_after = server.rss_kib()
    if any(c.lost.done() for c in held):
        raise BenchFailure("an idle connection was closed")
    close_all(held)
    return {
        "kib_per_conn": (rss_after - rss_before) / connections,
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
    }


class Player(asyncio.Protocol):
    """
    A soukets client that reads whole frames and hands each to C{on_frame}.
    """

    def __init__(self, on_frame: Callable[[Player, str, dict], None]) -> None:
        self.on_frame = on_frame
        self.buffer = b""
        self.client_id = ""
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            channel, _, body = line.decode().partition(";")
            self.on_frame(self, channel, json.loads(body))

    def send(self, channel: str, payload: dict) -> None:
        self.transport.write(f"{channel};{json.dumps(payload)}\n".encode())

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def games(server: RunningServer, clients: int = 1000,
                games_each: int = 5) -> dict[str, float]:
    """
    C{clients} players queue, get matched, move at once, get the result and
    queue again, until C{clients * games_each / 2} games are over (server run with
    C{--no-auto-queue}; rps, one round, lobbies of two).
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    last_move: dict[str, float] = {}
    to_result: list[float] = []
    finished = 0

    def fail(why: str) -> None:
        if not done.done():
            done.set_exception(BenchFailure(why))

    def on_frame(player: Player, channel: str, frame: dict) -> None:
        nonlocal finished
        kind = frame["type"]
        if kind == "welcome":
            player.client_id = frame["client"]
        elif kind == "round":
            last_move[channel] = time.perf_counter()
            player.send(channel, {"type": "move", "move": "rock"})
        elif kind == "result":
            to_result.append(time.perf_counter() - last_move[channel])
            if len(frame["moves"]) != 2 or frame["timed_out"]:
                fail(f"unexpected result {frame}")
        elif kind == "closed":
            # (Everyone queues again until the games are all played: were
            # each to stop after its own share, the last could wait alone.)
            finished += 1
            if finished < clients * games_each:
                player.send("", {"type": "queue"})
            elif not done.done():
                done.set_result(None)
        elif kind == "error":
            fail(f"error frame {frame}")

    players = [Player(on_frame) for _ in range(clients)]
    await open_connections(server.ports, players)
    await wait_until(lambda: all(p.client_id for p in players), "the welcomes")
    usage = Usage(server)
    usage.start()
    for player in players:
        player.send("", {"type": "queue"})
    await within(done, "the games")
    figures = usage.stop()
    close_all(players)
    total = clients * games_each // 2
    return {"games_per_s": total / figures["elapsed_s"], **percentiles(to_result), **figures}


async def storm(server: RunningServer, dialect: Dialect, clients: int = 5000) -> dict[str, float]:
    """
    A reconnect storm: C{clients} connections opened at once (as after a
    restart), each counted once the server greets it (soukets' C{welcome},
    NATS' C{INFO}, Redis' answer to C{HELLO}): the time until the last is
    greeted, and connect-to-greeting p50/p99.
    """
    loop = asyncio.get_running_loop()
    held = [Counting(dialect) for _ in range(clients)]
    usage = Usage(server)
    usage.start()
    started = time.perf_counter()
    attempts = [
        loop.create_connection(lambda p=p: p, "127.0.0.1", server.port) for p in held
    ]
    await within(asyncio.gather(*attempts), "connecting")
    await wait_until(lambda: all(c.received_any for c in held), "the greetings", every=0.005)
    figures = usage.stop()
    last = max(c.first_at for c in held) - started
    close_all(held)
    return {
        "connections_per_s": clients / last,
        "last_greeted_s": last,
        **percentiles([c.first_at - started for c in held]),
        **figures,
    }


async def presence(server: RunningServer, dialect: Dialect, **params: Any) -> dict[str, float]:
    """
    L{fanout} with half the subscribers asking for presence: what presence
    costs per message (it should cost nothing: it acts on joins and parts).
    """
    return await fanout(server, dialect, presence=True, **params)


async def resume(server: RunningServer, clients: int = 2000) -> dict[str, float]:
    """
    C{clients} players in C{clients} / 2 running games each lose their
    connection at once, and each takes its seat back from a new
    connection with its resume token: the time from dropping the old
    connection to the C{resumed} frame, p50/p99 (server run with
    C{--no-auto-queue} and rounds long enough to outlast the test).
    """
    loop = asyncio.get_running_loop()
    tokens: dict[Player, str] = {}
    matched = loop.create_future()
    resumed = loop.create_future()
    latencies: list[float] = []
    started: dict[Player, float] = {}

    def fail(why: str) -> None:
        for future in (matched, resumed):
            if not future.done():
                future.set_exception(BenchFailure(why))

    def on_frame(player: Player, channel: str, frame: dict) -> None:
        kind = frame["type"]
        if kind == "welcome":
            player.client_id = frame["client"]
        elif kind == "matched":
            tokens[player] = frame["resume"]
            if len(tokens) == clients and not matched.done():
                matched.set_result(None)
        elif kind == "resumed":
            latencies.append(time.perf_counter() - started[player])
            if len(latencies) == clients and not resumed.done():
                resumed.set_result(None)
        elif kind == "error":
            fail(f"error frame {frame}")

    players = [Player(on_frame) for _ in range(clients)]
    await open_connections(server.ports, players)
    await wait_until(lambda: all(p.client_id for p in players), "the welcomes")
    for player in players:
        player.send("", {"type": "queue"})
    await within(matched, "the lobbies")
    usage = Usage(server)
    usage.start()
    comebacks: list[Player] = []
    for old in players:
        new = Player(on_frame)
        started[new] = time.perf_counter()
        old.transport.abort()
        comebacks.append(new)
        tokens[new] = tokens[old]

    # Each batch resumes as soon as it is connected, not after all are.
    for start in range(0, len(comebacks), CONNECT_BATCH):
        batch = comebacks[start:start + CONNECT_BATCH]
        await open_connections(server.port, batch)
        for player in batch:
            player.send("", {"type": "resume", "token": tokens[player]})
    await within(resumed, "the resumes")
    figures = usage.stop()
    close_all(comebacks)
    return {"resumes_per_s": clients / figures["elapsed_s"], **percentiles(latencies), **figures}


async def timers(server: RunningServer, rounds: int = 5000, timeout: float = 5.0,
                 start_rate: float = 2000.0) -> dict[str, float]:
    """
    C{rounds} concurrent rounds of two players where nobody moves (server
    run with C{--no-auto-queue --move-timeout} C{timeout}): how late each
    C{result} comes after the round's deadline, counted from when the
    player got the C{round} frame.

    Rounds start at C{start_rate} a second (the players of each send
    C{queue} together), so that the C{round} frames, which the lateness is
    counted from, are not themselves held up behind a burst; with the
    defaults, every round starts within 2.5 s and all 5,000 run at once
    for the 2.5 s after.
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    round_at: dict[Player, float] = {}
    lateness: list[float] = []

    def fail(why: str) -> None:
        if not done.done():
            done.set_exception(BenchFailure(why))

    def on_frame(player: Player, channel: str, frame: dict) -> None:
        kind = frame["type"]
        if kind == "welcome":
            player.client_id = frame["client"]
        elif kind == "round":
            round_at[player] = time.perf_counter()
        elif kind == "result":
            lateness.append(time.perf_counter() - round_at[player] - timeout)
            if len(frame["timed_out"]) != 2:
                fail(f"unexpected result {frame}")
            if len(lateness) == 2 * rounds and not done.done():
                done.set_result(None)
        elif kind == "error":
            fail(f"error frame {frame}")

    players = [Player(on_frame) for _ in range(2 * rounds)]
    await open_connections(server.port, players)
    await wait_until(lambda: all(p.client_id for p in players), "the welcomes")
    began = time.perf_counter()
    queued = 0
    while queued < rounds:
        due = min(rounds, int((time.perf_counter() - began) * start_rate) + 1)
        for index in range(queued, due):
            players[2 * index].send("", {"type": "queue"})
            players[2 * index + 1].send("", {"type": "queue"})
        queued = due
        await asyncio.sleep(0.001)
    await wait_until(lambda: len(round_at) == 2 * rounds, "starting the rounds")
    started = time.perf_counter()
    await within(done, "the results", timeout + DEADLINE)
    close_all(players)
    if started - min(round_at.values()) > timeout:
        raise BenchFailure("the rounds were not all running at once")
    return percentiles(lateness)


class WebSocketPlayer(Player):
    """
    A L{Player} over WebSocket (C{/ws}): wsproto does the handshake and the
    framing; each text message is one frame.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request

        self.transport = transport
        self.ws = WSConnection(ConnectionType.CLIENT)
        transport.write(self.ws.send(Request(host="127.0.0.1", target="/ws")))

    def data_received(self, data: bytes) -> None:
        from wsproto.events import Ping, TextMessage

        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                channel, _, body = event.data.partition(";")
                self.on_frame(self, channel, json.loads(body))
            elif isinstance(event, Ping):
                self.transport.write(self.ws.send(event.response()))

    def send(self, channel: str, payload: dict) -> None:
        from wsproto.events import TextMessage

        self.transport.write(self.ws.send(TextMessage(data=f"{channel};{json.dumps(payload)}")))


async def soak(server: RunningServer, clients: int = 2000, seconds: float = 120.0,
               rooms: int = 20, think: tuple[float, float] = (1.0, 3.0)) -> dict[str, Any]:
    """
    C{clients} players, half over TCP and half over WebSocket, play game
    after game for C{seconds} and say a word in their room (one of
    C{rooms} channels) after each, then think for a while (C{think}: a
    random pause, in seconds) before queueing again: a steady load well
    under the server's capacity, as a day of real players would be.  Every second: the server's RSS and CPU,
    the games played and the p99 from a round's last move to its result.
    Every result must reach both players of its game, every chat line every
    other member of its room; afterwards, the series must be flat: RSS in
    the last third no more than 10 % above the second third.
    """
    loop = asyncio.get_running_loop()
    assert server.lines_port is not None, "the soak needs the web site and the lines"
    last_move: dict[str, float] = {}
    waits: list[float] = []
    results: dict[str, list[Player]] = {}  # lobby -> who got its result
    closed: dict[str, list[Player]] = {}  # lobby -> who got its end
    said = heard = 0
    games = 0
    stopping = False
    failures: list[str] = []

    def on_frame(player: Player, channel: str, frame: dict) -> None:
        nonlocal said, heard, games
        kind = frame["type"]
        if kind == "welcome":
            player.client_id = frame["client"]
        elif kind == "round":
            last_move[channel] = time.perf_counter()
            player.send(channel, {"type": "move", "move": "rock"})
        elif kind == "result":
            waits.append(time.perf_counter() - last_move[channel])
            results.setdefault(channel, []).append(player)
        elif kind == "closed":
            closed.setdefault(channel, []).append(player)
            if len(closed[channel]) == 2:
                del closed[channel]
                if len(results.pop(channel, [])) != 2:
                    failures.append(f"a result of {channel} was not delivered to both")
                games += 1
            if not stopping:
                player.send(player.room, {"type": "publish", "data": "gg"})
                said += 1
                loop.call_later(rng.uniform(*think), requeue, player)
        elif kind == "message":
            heard += 1
        elif kind == "error":
            failures.append(f"error frame {frame}")

    rng = random.Random(7)

    def requeue(player: Player) -> None:
        if not stopping and not player.lost.done():
            player.send("", {"type": "queue"})

    players: list[Player] = []
    for i in range(clients):
        player = (WebSocketPlayer if i % 2 else Player)(on_frame)
        player.room = f"room{i % rooms}"
        players.append(player)
    tcp = [p for p in players if not isinstance(p, WebSocketPlayer)]
    ws = [p for p in players if isinstance(p, WebSocketPlayer)]
    await open_connections(server.lines_port, tcp)
    await open_connections(server.port, ws)
    await wait_until(lambda: all(p.client_id for p in players), "the welcomes")
    for player in players:
        player.send(player.room, {"type": "subscribe"})
    await asyncio.sleep(0.5)
    series: list[dict[str, float]] = []
    began = time.perf_counter()
    cpu_before, games_before = server.cpu_seconds(), 0
    for player in players:  # (spread over the first think time)
        loop.call_later(rng.uniform(0, think[1]), requeue, player)
    while time.perf_counter() - began < seconds:
        await asyncio.sleep(1.0)
        if failures:
            raise BenchFailure(failures[0])
        if any(p.lost.done() for p in players):
            raise BenchFailure("a player was disconnected")
        now_cpu = server.cpu_seconds()
        recent, waits[:] = list(waits), []
        series.append({
            "t": time.perf_counter() - began,
            "rss_mib": server.rss_kib() / 1024,
            "cpu": now_cpu - cpu_before,
            "games": games - games_before,
            "p99_ms": percentiles(recent)["p99_ms"] if recent else 0.0,
        })
        cpu_before, games_before = now_cpu, games
    stopping = True
    await wait_until(lambda: not results and not closed, "the last games' results")
    await asyncio.sleep(0.5)
    close_all(players)
    members = clients // rooms
    if heard != said * (members - 1):
        raise BenchFailure(f"{said} chat lines should have been heard {said * (members - 1)} "
                           f"times, not {heard}")
    third = max(1, len(series) // 3)
    middle = statistics.median(s["rss_mib"] for s in series[third: 2 * third])
    last = max(s["rss_mib"] for s in series[2 * third:])
    if last > middle * 1.10:
        raise BenchFailure(f"memory grew: {middle:.1f} MiB, then up to {last:.1f} MiB")
    warm = series[third:]
    return {
        "games_per_s": statistics.median(s["games"] for s in warm),
        "p99_ms": statistics.median(s["p99_ms"] for s in warm),
        "rss_mib": last,
        "rss_growth": last / middle,
        "server_cpu": statistics.median(s["cpu"] for s in warm),
        "chat_heard": heard,
        "clients": clients,
        "series": series,
    }


def build_native(workdir: str) -> str:
    """
    Build the native load generator (C{bench/loadgen.c}) with the system's
    C{cc}; the path of the program.
    """
    import shutil
    import subprocess
    from pathlib import Path

    cc = shutil.which("cc")
    if cc is None:
        raise BenchFailure("no C compiler: apt-get install gcc (the native load generator needs cc)")
    program = str(Path(workdir) / "loadgen")
    source = str(Path(__file__).resolve().parent / "loadgen.c")
    subprocess.run([cc, "-O2", "-Wall", "-o", program, source], check=True)
    return program


NATIVE = ("fanout", "pairs", "games", "storm")  # what bench/loadgen.c drives


def _native(server: RunningServer, program: str, mode: str, *args: object) -> dict[str, float]:
    """
    Run the native load generator's C{mode} against C{server} (the servers'
    PIDs appended, for their CPU); its JSON figures.
    """
    import subprocess

    processes = server._all() if hasattr(server, "_all") else [server]
    pids = [str(p.pid) for p in processes if getattr(p, "process", None) is not None]
    done = subprocess.run([program, mode, *map(str, args), *pids],
                          capture_output=True, text=True, timeout=4 * DEADLINE)
    if done.returncode != 0:
        raise BenchFailure(done.stderr.strip() or f"the native load generator exited {done.returncode}")
    figures = json.loads(done.stdout)
    figures["loadgen"] = "native"
    return figures


def native_fanout(server: RunningServer, dialect: str, program: str, subscribers: int = 100,
                  messages: int = 20000, window: int = 1000) -> dict[str, float]:
    """
    L{fanout} driven by the native load generator (C, epoll), which counts
    and checks the same way; at least 200,000 messages at full size, so that
    the server's CPU (read from /proc in clock ticks) is measured over a
    second or more.
    """
    messages = max(messages, 200_000) if messages >= 20000 else messages
    return _native(server, program, "fanout", server.port, dialect, subscribers, messages, window)


def native_pairs(server: RunningServer, dialect: str, program: str, channels: int = 500,
                 exchanges: int = 200, reference_rate: float | None = None,
                 paced_seconds: float = 2.0) -> dict[str, float]:
    """
    L{pairs} driven by the native load generator: flat out, then paced at
    L{PACED_LEVELS} of C{reference_rate} (the floor's, when it ran first).
    At full size, five times the exchanges, for the same reason as in
    L{native_fanout}.
    """
    exchanges = exchanges * 5 if exchanges >= 200 else exchanges
    return _native(server, program, "pairs", server.port, dialect, channels, exchanges,
                   reference_rate or 0, paced_seconds)


def native_games(server: RunningServer, program: str, clients: int = 1000,
                 games_each: int = 5) -> dict[str, float]:
    """
    L{games} driven by the native load generator (players take the
    cluster's ports in turn).  At full size, four times the games each.
    """
    games_each = games_each * 4 if clients >= 1000 else games_each
    return _native(server, program, "games", ",".join(map(str, server.ports)), clients, games_each)


def native_storm(server: RunningServer, dialect: str, program: str,
                 clients: int = 5000) -> dict[str, float]:
    """
    L{storm} driven by the native load generator: every connection opened
    at once without waiting, each greeting timed from the storm's start.
    """
    return _native(server, program, "storm", server.port, dialect, clients)


def native(scenario: str, server: RunningServer, dialect: str, program: str,
           **params: Any) -> dict[str, float]:
    """
    Scenario C{scenario} (one of L{NATIVE}) driven by the native load
    generator.
    """
    if scenario == "fanout":
        return native_fanout(server, dialect, program, **params)
    if scenario == "pairs":
        params.pop("paced_levels", None)
        return native_pairs(server, dialect, program, **params)
    if scenario == "games":
        return native_games(server, program, **params)
    return native_storm(server, dialect, program, **params)

"""
The pairs path alone: the messages of C{bench/run.py}'s C{pairs} scenario
(one channel per pair of clients, each message published by one and
relayed to the other) through soukets' own code, connection to connection,
in this process: the real gate, connections (admitted by the real host
counter), sessions and hub, with the socket replaced by a link that keeps
what it is given.  No kernel, no reactor dispatch: what is left is exactly
what soukets adds to each message on top of the stack (the ceiling,
C{bench/ceiling.py}, pays the rest too).

    python bench/pairpath.py [--messages 300000] [--repeat 5] [--profile]
                             [--baseline REF]

Prints microseconds of CPU per message, the best of C{--repeat} fresh
processes; with C{--baseline}, the same for soukets as of git REF,
alternately; with C{--profile}, the top of a profile of one run.  Every
relayed frame is checked (channel, sender, data, and that each receiver
got exactly its messages, in order).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gamepath import path_command  # noqa: E402

PAYLOAD = 100  # characters of data, as bench/loadgen.c sends


class KeptLink:
    """
    The link of one connection: keeps the bytes it is asked to write, in
    place of a socket.
    """

    framing = None

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def refuse(self, frame: bytes) -> None:
        raise SystemExit(f"refused: {frame!r}")

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


def play(messages: int, pairs: int = 500, frame_type: str = "publish") -> float:
    """
    C{messages} messages between the two members of C{pairs} channels, a
    message each way per pair per reactor turn, as the clients of C{pairs}
    play ping-pong; the CPU seconds they took.  (C{frame_type} is for the
    tests: any other type than C{publish} must fail the checks.)
    """
    from twisted.internet import reactor, task
    from twisted.internet.defer import Deferred
    from twisted.logger import globalLogBeginner

    from soukets import logs, service
    from soukets.counter import HostCounterService
    from soukets.server import Server, ServerSettings
    from soukets.transports.connection import Connection, Gate

    # The daemon's log at info, to nowhere; its collector settings.
    globalLogBeginner.beginLoggingTo(
        [logs.make_observer("info", "text", {"logfile": os.devnull, "nodaemon": False})],
        redirectStandardIO=False)
    getattr(service, "tune_garbage_collector", lambda: None)()
    outcome: list[float | BaseException] = []

    async def run() -> None:
        try:
            with tempfile.TemporaryDirectory() as workdir:
                counter = HostCounterService(Path(workdir) / "clients.json", 2 * pairs + 10)
                counter.startService()
                try:
                    outcome.append(await measure(counter))
                finally:
                    await counter.stopService()
        except BaseException as error:
            outcome.append(error)
        finally:
            reactor.stop()

    async def measure(counter: HostCounterService) -> float:
        # No rate limit reached: every message is one the server relays.
        server = Server(ServerSettings(auto_queue=False, max_rate=1e9, rate_burst=1e9),
                        reactor, host_clients=counter.host_clients)
        gate = Gate(server, counter)
        links = [KeptLink() for _ in range(2 * pairs)]
        connections = [Connection(gate, "tcp", link, f"127.0.0.1:{n}")
                       for n, link in enumerate(links)]
        for connection in connections:
            connection.made()  # admitted by the host counter's thread
        while any(connection.session is None for connection in connections):
            await task.deferLater(reactor, 0.01, lambda: None)
        for n, connection in enumerate(connections):
            connection.received(b'pair%d;{"type":"subscribe"}\n' % (n // 2))
        gate.flush()
        senders = [connection.session.client_id for connection in connections]
        for link in links:
            link.written.clear()
        lines = []
        for n in range(2 * pairs):
            data = f"@@{n:09d}:" + "0" * 19
            data += "x" * (PAYLOAD - len(data))
            lines.append(f'pair{n // 2};{{"type":"{frame_type}","data":"{data}"}}\n'.encode())
        expected = []
        for n in range(2 * pairs):
            peer = n ^ 1
            data = lines[peer].split(b'"data":', 1)[1]
            expected.append(b'pair%d;{"type":"message","from":"%s","data":%s' % (
                n // 2, senders[peer].encode(), data))
        turns = max(2, messages // pairs)
        spent = 0.0
        for turn in range(turns):
            # One reactor turn: one side of every pair publishes, the other
            # is written to.
            began = time.process_time()
            for n in range(turn & 1, 2 * pairs, 2):
                connections[n].received(lines[n])
            gate.flush()
            spent += time.process_time() - began
            for n in range((turn & 1) ^ 1, 2 * pairs, 2):
                written = links[n].written
                if written != [expected[n]]:
                    raise SystemExit(f"client {n} was written {written!r}, "
                                     f"not {expected[n]!r}")
                written.clear()
        return spent * messages / (turns * pairs)

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(run()))
    reactor.run()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def main() -> int:
    return path_command(__doc__, __file__, play, "messages", 300000, "message")


if __name__ == "__main__":
    sys.exit(main())

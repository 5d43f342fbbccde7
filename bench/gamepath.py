"""
The game path alone: games played through soukets' sans-IO core (sessions,
lobby service, hub, game) in this process, with no sockets and no reactor
turn, so that its cost is measured without the noise of a loaded machine
and of the kernel.  What a game costs the server on top of this is
Twisted's dispatch and the syscalls (see C{bench/ceiling.py}).

    python bench/gamepath.py [--games 20000] [--repeat 5] [--profile]
                             [--baseline REF]

Prints microseconds of CPU per game (the best of C{--repeat} runs, the
figure least disturbed by other work on the machine); with C{--baseline},
the same for soukets as of git REF, measured alternately in the same
command; with C{--profile}, the top of a profile of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

CHECKOUT = Path(__file__).resolve().parent.parent


def play(games: int, players: int = 1000, move: bytes = b"rock") -> float:
    """
    C{games} games of rock-paper-scissors (lobbies of two, one round)
    between C{players} sessions that queue, move at once and queue again;
    the CPU seconds they took.  Every frame a session is sent is read the
    way a client reads it (type and channel), and every result checked.
    """
    # The reactor as the clock, never run: its timers are those the daemon
    # uses (a heap; task.Clock sorts a list on every call).
    from twisted.internet import reactor

    from soukets import logs
    from soukets.outbox import Outbox
    from soukets.server import Server, ServerSettings

    from twisted.logger import globalLogBeginner

    # The daemon's log at info (its per-game record included), to nowhere.
    globalLogBeginner.beginLoggingTo(
        [logs.make_observer("info", "text", {"logfile": os.devnull, "nodaemon": False})],
        redirectStandardIO=False)
    from soukets import service

    # (As the daemon does on start, if this tree's daemon does.)
    getattr(service, "tune_garbage_collector", lambda: None)()
    server = Server(ServerSettings(auto_queue=False), reactor)
    sessions = []
    outboxes: list[Outbox] = []
    pending: list[int] = []  # sessions sent something this turn
    played = [0]

    def output_of(index: int):
        outbox = Outbox()
        outboxes.append(outbox)

        def output(data: object) -> None:
            if not outbox:
                pending.append(index)
            outbox.add(data)
        return output

    for index in range(players):
        session = server.connect(output_of(index), lambda: None)
        session.start()
        sessions.append(session)
    pending.clear()
    for outbox in outboxes:
        outbox.take()
    queue = b';{"type":"queue"}\n'
    began = time.process_time()
    for session in sessions:
        session.data_received(queue)
    wanted = 2 * games
    while pending and played[0] < wanted:
        turn, pending[:] = pending[:], []
        for index, data in [(index, outboxes[index].take()) for index in turn]:
            for line in data.split(b"\n")[:-1]:
                channel, _, body = line.partition(b";")
                if body.startswith(b'{"type":"round"'):
                    sessions[index].data_received(
                        channel + b';{"type":"move","move":"' + move + b'"}\n')
                elif body.startswith(b'{"type":"result"'):
                    if b'"timed_out":[]' not in body or body.count(b':"rock"') != 2:
                        raise SystemExit(f"unexpected result {body!r}")
                elif body == b'{"type":"closed"}':
                    played[0] += 1
                    if played[0] < wanted:
                        sessions[index].data_received(queue)
                elif body.startswith(b'{"type":"error"'):
                    raise SystemExit(f"error frame {body!r}")
    took = time.process_time() - began
    if played[0] < wanted:
        raise SystemExit(f"only {played[0] // 2} games of {games} were played")
    return took


def main() -> int:
    return path_command(__doc__, __file__, play, "games", 20000, "game")


def path_command(doc: str, script: str, play: Callable[[int], float], count_name: str,
                 default_count: int, unit: str) -> int:
    """
    The command line of a path benchmark (this one, C{bench/pairpath.py}):
    C{play(count)} gives the CPU seconds that C{count} units took; prints
    microseconds of CPU per C{unit}, the best of C{--repeat} fresh
    processes, for this tree and, with C{--baseline REF}, for git REF, run
    alternately; with C{--profile}, the top of a profile of one run.
    """
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(f"--{count_name}", type=int, default=default_count, dest="count")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", metavar="REF")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # (one measurement, in a fresh process: see below)
        print(play(args.count) / args.count * 1e6)
        return 0
    if args.profile:
        sys.path.insert(0, str(CHECKOUT))  # this tree's soukets, not an installed one
        profile = cProfile.Profile()
        profile.runcall(play, args.count)
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return 0
    trees = {"soukets": CHECKOUT}
    with tempfile.TemporaryDirectory() as workdir:
        if args.baseline:
            tree = Path(workdir) / "baseline"
            tree.mkdir()
            archive = subprocess.run(["git", "-C", str(CHECKOUT), "archive", args.baseline],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            trees[f"soukets@{args.baseline}"] = tree
        figures: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.repeat):
            for name, tree in trees.items():
                # Each measurement in a fresh process running that tree's code.
                done = subprocess.run(
                    [sys.executable, script, "--one", f"--{count_name}", str(args.count)],
                    env={**os.environ, "PYTHONPATH": str(tree)},
                    check=True, capture_output=True, text=True)
                figures[name].append(float(done.stdout))
    best = {name: min(values) for name, values in figures.items()}
    for name, values in figures.items():
        line = f"{name:<24} {best[name]:8.1f} us/{unit} (best of {len(values)}: " + \
            ", ".join(f"{v:.1f}" for v in values) + ")"
        if name != "soukets":
            line += f"  soukets is {best[name] / best['soukets']:.2f} x as fast"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

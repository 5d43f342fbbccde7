"""
This tree's soukets against soukets as of git REF (or against another
server of the benchmark, such as the floor), both at once on one core: the
server CPU each takes per unit of work, free of this machine's drift.

    python bench/sharedcore.py (--baseline REF | --against SERVER)
                               [--scenario pairs] [--rounds 5] [--quick]

C{bench/run.py --baseline} runs one server after the other, and on this
machine the same code's rate changes by up to 2 x from one minute to the
next: two consecutive C{pairs} runs of the same tree differ by 0.89 to
1.11 x, so a 5 % change needs many runs to be seen.  Here, in each round,
both servers are pinned to the same CPU at the same time, each driven by
its own native load generator (both on the other CPU): the kernel shares
the core between them, whatever the machine is doing, and the ratio of
their work per server CPU-second (messages, games or deliveries) compares
the two trees under the same conditions.  Which server starts first
alternates from round to round, as swapping it alone moved the ratio by
about 0.7 %.  Two copies of one tree measured this way differ by 0.996 to
1.009 x (6 rounds, median 1.000).

What it measures is CPU per unit of work, not throughput or latency, and
with a cost neither server pays alone: sharing a core, each evicts the
other's data from the CPU's caches.  Use it to decide whether a change
helps; report C{bench/run.py}'s figures.

With C{--against floor} (or C{ceiling}, C{redis}, C{nats}: a server the
scenario runs in C{bench/run.py}), the peer is that server instead of an
older soukets: where soukets stands against the floor without the drift
that moves C{run.py}'s own ratio by a tenth from one command to the next.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: E402
import servers  # noqa: E402
from run import SCENARIOS, export, raise_fd_limit  # noqa: E402

WORK = {"pairs": "messages_per_s", "games": "games_per_s", "fanout": "deliveries_per_s"}
"""The scenarios this compares, and the figure of each that counts work."""

SIZES = {"pairs": (dict(channels=50, exchanges=100, paced_seconds=0.1),
                   dict(channels=500, exchanges=120, paced_seconds=0.1)),
         "games": (dict(clients=100, games_each=3), dict(clients=1000, games_each=15)),
         "fanout": (dict(subscribers=20, messages=2000, window=1000),
                    dict(subscribers=100, messages=500_000, window=1000))}
"""Each scenario's sizes for L{scenarios.native}, quick and full (which
scales the full ones up: 600 exchanges, 60 games each; a full round takes
about 30 s)."""


def per_cpu_second(figures: dict[str, float], scenario: str) -> float:
    """
    Units of work a server did per CPU-second it used, from one run's
    figures.
    """
    return figures[WORK[scenario]] / figures["server_cpu"]


def starting_order(trees: dict[str, Path], number: int) -> dict[str, Path]:
    """
    C{trees} in the order their servers start (and are driven) in round
    C{number}, counted from 1: as given in odd rounds, reversed in even
    ones.  Swapping the order of two servers moved their ratio by about
    0.7 %, as much as an idea worth measuring; alternating cancels it.
    """
    return trees if number % 2 else dict(reversed(trees.items()))


def kind_of(name: str) -> str:
    """
    The kind of server (as L{servers.start} knows them) a contender's name
    stands for: C{soukets} for this tree and C{soukets@REF}, else the name.
    """
    return "soukets" if servers.is_soukets(name) else name


def one_round(scenario: str, trees: dict[str, Path], program: str, workdir: str,
              quick: bool) -> dict[str, dict[str, float]]:
    """
    Start each contender (in the order of C{trees}: a soukets from its
    source tree, or another server), pinned to the same CPU; drive all at
    once; stop them; each one's figures.
    """
    extra = next(s for s in SCENARIOS if s.name == scenario).soukets_args(quick)
    params = SIZES[scenario][0 if quick else 1]
    started = {}
    pool = ThreadPoolExecutor(len(trees))
    try:
        for name, tree in trees.items():
            started[name] = servers.start(kind_of(name), workdir, extra, code=tree)
        futures = {name: pool.submit(scenarios.native, scenario, server,
                                     kind_of(name), program, **params)
                   for name, server in started.items()}
        return {name: future.result() for name, future in futures.items()}
    finally:
        # The servers first (by PID): a generator still running then fails
        # at once rather than at its own deadline.
        for server in started.values():
            server.stop()
        pool.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    peer = parser.add_mutually_exclusive_group(required=True)
    peer.add_argument("--baseline", metavar="REF", help="soukets as of this git ref")
    peer.add_argument("--against", metavar="SERVER",
                      help="another server the scenario runs: floor, ceiling, redis or nats")
    parser.add_argument("--scenario", choices=sorted(WORK), default="pairs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    args = parser.parse_args()
    # Stopped by SIGTERM, stop the servers as on any other exit.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    if not servers.can_pin():
        print("needs taskset and two CPUs: both servers must share one", file=sys.stderr)
        return 2
    if args.against is not None:
        scenario = next(s for s in SCENARIOS if s.name == args.scenario)
        peers = [kind for kind in scenario.servers if not servers.is_soukets(kind)
                 and not servers.cluster_size(kind)]
        if args.against not in peers:
            if peers:
                why = f"{args.scenario} compares soukets with {', '.join(peers)}"
            else:
                why = f"{args.scenario} runs soukets alone (use --baseline)"
            print(f"--against: {why}", file=sys.stderr)
            return 2
    raise_fd_limit()
    ratios = []
    with tempfile.TemporaryDirectory() as workdir:
        program = scenarios.build_native(workdir)
        if args.against is not None:
            base = args.against
            # (A server other than soukets runs from no source tree.)
            trees = {"soukets": servers.CHECKOUT, base: servers.CHECKOUT}
        else:
            base = f"soukets@{args.baseline}"
            trees = {"soukets": servers.CHECKOUT, base: export(args.baseline, workdir)}
        for number in range(1, args.rounds + 1):
            figures = one_round(args.scenario, starting_order(trees, number), program,
                                workdir, args.quick)
            mine, theirs = (per_cpu_second(figures[name], args.scenario)
                            for name in ("soukets", base))
            ratios.append(mine / theirs)
            print(f"round {number}: soukets {mine:,.0f} {WORK[args.scenario][:-6]} a CPU-second "
                  f"({figures['soukets']['server_cpu']:.0%} of the core), {base} {theirs:,.0f} "
                  f"({figures[base]['server_cpu']:.0%}): {ratios[-1]:.3f} x", flush=True)
    print(f"{args.scenario}: soukets does {statistics.median(ratios):.3f} x the work a CPU-second "
          f"of {base} (median of {len(ratios)} rounds, {min(ratios):.3f} to {max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

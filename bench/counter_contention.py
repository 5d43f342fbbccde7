"""
How long one admission spends in the host counter (lock, read, check,
write), alone and with 3 processes contending for the same file.

    python bench/counter_contention.py [--transactions N]

Prints p50/p99/max per transaction for 1 process, then for 3 at once.
Touches only a temporary directory; every loop is bounded.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from soukets.counter import CounterFile  # noqa: E402


def hammer(path: str, transactions: int, start: multiprocessing.Event, out: multiprocessing.Queue) -> None:
    counter = CounterFile.for_this_process(Path(path))
    start.wait(10)
    timings = []
    for _ in range(transactions):
        began = time.perf_counter()
        counter.admit(1_000_000)
        timings.append(time.perf_counter() - began)
        began = time.perf_counter()
        counter.release()
        timings.append(time.perf_counter() - began)
    counter.remove()
    out.put(timings)


def run(processes: int, transactions: int) -> list[float]:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "clients.json")
        start = multiprocessing.Event()
        out: multiprocessing.Queue = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(target=hammer, args=(path, transactions, start, out))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        start.set()
        timings = []
        for _ in workers:
            timings.extend(out.get(timeout=120))
        for worker in workers:
            worker.join(10)
        return timings


def report(label: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6  # noqa: E731
    print(
        f"{label:<14} {len(ordered):>7} transactions  p50 {p(0.5):7.0f} us  "
        f"p99 {p(0.99):7.0f} us  max {max(ordered) * 1e6:7.0f} us  "
        f"mean {statistics.mean(ordered) * 1e6:7.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transactions", type=int, default=2000)
    args = parser.parse_args()
    report("1 process", run(1, args.transactions))
    report("3 processes", run(3, args.transactions))


if __name__ == "__main__":
    main()

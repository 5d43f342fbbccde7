"""
The fanout scenario, against soukets and the floor relay in one run.

    python bench/fanout.py [--subscribers 100] [--messages 20000] [--runs 3]

S subscribers on one channel, one publisher sending M messages of about
100 bytes, never more than W ahead of the slowest subscriber.  Subscribers
count newlines in large reads and parse only sampled messages (1 in 50) for
latency.  Every subscriber must get every message, in order, or the run
fails.  Servers run on 127.0.0.1, pinned to CPU 0 when taskset exists (the
load generator to CPU 1); every loop is bounded in count and time, and the
script stops every server it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
SAMPLE = 50
SAMPLED = re.compile(rb'"data":"(\d+) (\d+\.\d+) ')
DEADLINE = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cpu: int, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def start_server(kind: str, port: int, workdir: str) -> subprocess.Popen:
    if kind == "soukets":
        argv = [sys.executable, "-m", "soukets", "--listen", f"tcp:{port}:interface=127.0.0.1:backlog=511",
                "--no-auto-queue", "--max-clients", "100000", "--max-rate", "10000000",
                "--counter-file", os.path.join(workdir, "clients.json")]
    else:
        argv = [sys.executable, str(HERE / "floor.py"), str(port)]
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT))
    process = subprocess.Popen(pinned(0, argv), cwd=workdir, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{kind} did not start")


async def fanout(port: int, subscribers: int, messages: int, window: int) -> dict:
    received = [0] * subscribers
    latencies: list[float] = []
    last_seq = [-1] * subscribers
    progress = asyncio.Event()
    readers = []
    for index in range(subscribers):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b'bench;{"type":"subscribe"}\n')
        readers.append((reader, writer))
    # Wait until every subscription is in (soukets answers; the floor does not).
    await asyncio.sleep(0.5)
    for reader, _ in readers:
        try:
            await asyncio.wait_for(reader.read(65536), 0.05)
        except asyncio.TimeoutError:
            pass

    async def subscribe(index: int, reader: asyncio.StreamReader) -> None:
        while received[index] < messages:
            chunk = await reader.read(1 << 18)
            if not chunk:
                raise RuntimeError("a subscriber was disconnected")
            received[index] += chunk.count(b"\n")
            now = time.perf_counter()
            for seq, sent in SAMPLED.findall(chunk):
                seq = int(seq)
                if seq <= last_seq[index]:
                    raise RuntimeError(f"out of order: {seq} after {last_seq[index]}")
                last_seq[index] = seq
                latencies.append(now - float(sent))
            progress.set()

    tasks = [asyncio.ensure_future(subscribe(i, r)) for i, (r, _) in enumerate(readers)]
    _, publisher = await asyncio.open_connection("127.0.0.1", port)
    pad = "x" * 60
    started = time.perf_counter()
    for seq in range(messages):
        while seq - min(received) >= window:
            progress.clear()
            await progress.wait()
        if seq % SAMPLE == 0:  # sampled: carries its send time
            line = f'bench;{{"type":"publish","data":"{seq} {time.perf_counter():.6f} {pad}"}}\n'
        else:
            line = f'bench;{{"type":"publish","data":"{seq}:{pad}"}}\n'
        publisher.write(line.encode())
        if seq % 64 == 0:
            await publisher.drain()
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    elapsed = time.perf_counter() - started
    if any(n != messages for n in received):
        raise RuntimeError(f"lost or extra messages: {set(received)}")
    for _, writer in readers:
        writer.close()
    publisher.close()
    latencies.sort()
    return {
        "deliveries_per_s": subscribers * messages / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
        print("servers pinned to CPU 0, load generator to CPU 1")
    else:
        print("not pinned (no taskset, or one CPU)")
    results: dict[str, list[dict]] = {"soukets": [], "floor": []}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.runs):
            for kind in results:
                port = free_port()
                server = start_server(kind, port, workdir)
                try:
                    results[kind].append(asyncio.run(
                        fanout(port, args.subscribers, args.messages, args.window)))
                finally:
                    server.terminate()
                    server.wait(10)
    print(f"fanout: {args.subscribers} subscribers, {args.messages} messages, medians of {args.runs} runs")
    print(f"{'server':<10}{'deliveries/s':>14}{'p50 ms':>10}{'p99 ms':>10}")
    medians = {}
    for kind, runs in results.items():
        medians[kind] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        m = medians[kind]
        print(f"{kind:<10}{m['deliveries_per_s']:>14,.0f}{m['p50_ms']:>10.2f}{m['p99_ms']:>10.2f}")
    ratio = medians["soukets"]["deliveries_per_s"] / medians["floor"]["deliveries_per_s"]
    print(f"soukets / floor: {ratio:.2f}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "fanout.json").write_text(json.dumps({"args": vars(args), "medians": medians, "runs": results}, indent=2))


if __name__ == "__main__":
    main()

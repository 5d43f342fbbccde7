"""
soukets side by side with the floor relay, Redis and NATS: every scenario,
in one command.

    python bench/run.py [--runs 3] [--quick] [--only fanout,pairs]
                        [--servers soukets,floor,redis,nats] [--out DIR]

Each run starts every server afresh on a free loopback port (pinned to CPU
0, the load generator to CPU 1, when taskset and two CPUs exist), runs the
scenario against it and stops it by PID.  Redis and NATS come from
Debian's packages, installed with apt-get if missing.  The script prints a
table of medians with soukets' ratio to each peer, writes them with every
run to DIR/bench.json and plots them to DIR/bench.png (DIR defaults to
bench/results).  It exits non-zero if any run fails its exactness checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: E402
import servers  # noqa: E402
from dialects import DIALECTS, WS_DIALECTS  # noqa: E402

# The floor runs first: the others' paced pairs use its rate.
TCP_SERVERS = ["floor", "ceiling", "soukets", "redis", "nats"]
ALL_SERVERS = ["floor", "ceiling", "wsfloor", "soukets", "redis", "nats", "soukets-redis1", "soukets-redis2"]


@attrs.frozen
class Scenario:
    """
    One scenario: the servers it runs against, the figure it is judged by
    (and whether more is better), and how to run it at full and quick size.
    """

    name: str
    servers: tuple[str, ...]
    headline: str
    higher_is_better: bool
    full: dict
    quick: dict
    transport: str = "tcp"  # "websocket": clients use the web site's /ws; "mixed": both

    def soukets_args(self, quick: bool) -> list[str]:
        """
        How soukets runs for this scenario: clients queue when told to, and
        rounds last the scenario's timeout.
        """
        params = self.quick if quick else self.full
        args = ["--no-auto-queue"]
        if "timeout" in params:
            args += ["--move-timeout", str(params["timeout"])]
        return args

    def coroutine(self, server: servers.RunningServer, quick: bool, floor: dict | None):
        """
        This scenario against C{server}.  C{floor} is what the floor did in
        the same run, if it ran first: in C{pairs}, every server's paced
        phases run at fractions of the floor's rate, so that round trips
        are compared at the same loads.
        """
        # A WebSocket scenario runs its TCP namesake's code (wsfanout: fanout).
        code_name = self.name.removeprefix("ws") if self.transport == "websocket" else self.name
        code_name = code_name.removeprefix("x")  # (xfanout: fanout across nodes)
        run = getattr(scenarios, code_name)
        params = dict(self.quick if quick else self.full)
        if self.name == "resume":
            params.pop("timeout")  # (it is soukets' --move-timeout)
        if self.name == "pairs" and floor is not None:
            params["reference_rate"] = floor["messages_per_s"]
        kind = "soukets" if servers.is_soukets(server.kind) or servers.cluster_size(server.kind) else server.kind
        if self.transport == "websocket":
            return run(server, WS_DIALECTS[kind], **params)
        if code_name in ("fanout", "pairs", "conns", "presence", "storm"):
            return run(server, DIALECTS[kind], **params)
        return run(server, **params)


SCENARIOS = [
    # (Not the ceiling: it writes every copy at once, where fanout gains by
    # coalescing; it is the ceiling of a scenario where nothing coalesces.)
    Scenario("fanout", ("floor", "soukets", "redis", "nats"), "deliveries_per_s", True,
             full={"subscribers": 100, "messages": 20000, "window": 1000},
             quick={"subscribers": 20, "messages": 2000, "window": 200}),
    Scenario("wsfanout", ("wsfloor", "soukets"), "deliveries_per_s", True,
             full={"subscribers": 100, "messages": 5000, "window": 500},
             quick={"subscribers": 20, "messages": 500, "window": 100},
             transport="websocket"),
    Scenario("wsconns", ("wsfloor", "soukets"), "kib_per_conn", False,
             full={"connections": 5000},
             quick={"connections": 200},
             transport="websocket"),
    Scenario("pairs", tuple(TCP_SERVERS), "messages_per_s", True,
             full={"channels": 500, "exchanges": 200, "paced_seconds": 2.0},
             quick={"channels": 50, "exchanges": 20, "paced_seconds": 0.3}),
    Scenario("conns", tuple(TCP_SERVERS), "kib_per_conn", False,
             full={"connections": 10000},
             quick={"connections": 300}),
    Scenario("games", ("soukets",), "games_per_s", True,
             full={"clients": 1000, "games_each": 5},
             quick={"clients": 100, "games_each": 2}),
    Scenario("storm", ("soukets", "redis", "nats"), "connections_per_s", True,
             full={"clients": 5000},
             quick={"clients": 200}),
    Scenario("presence", ("soukets",), "deliveries_per_s", True,
             full={"subscribers": 100, "messages": 20000, "window": 1000},
             quick={"subscribers": 20, "messages": 2000, "window": 200}),
    Scenario("resume", ("soukets",), "p99_ms", False,
             full={"clients": 2000, "timeout": 60.0},
             quick={"clients": 100, "timeout": 60.0}),
    # Across nodes: publisher on the first node, subscribers (or players)
    # spread over the nodes; the same code against one process and against
    # Redis' own pub/sub.
    Scenario("xfanout", ("soukets", "redis", "soukets-redis1", "soukets-redis2"),
             "deliveries_per_s", True,
             full={"subscribers": 100, "messages": 20000, "window": 1000},
             quick={"subscribers": 20, "messages": 2000, "window": 200}),
    Scenario("xgames", ("soukets", "soukets-redis1", "soukets-redis2"), "games_per_s", True,
             full={"clients": 1000, "games_each": 5},
             quick={"clients": 100, "games_each": 2}),
    # 2,000 clients, half over WebSocket, playing and chatting for 2 minutes:
    # the per-second series must be flat.
    Scenario("soak", ("soukets",), "p99_ms", False,
             full={"clients": 2000, "seconds": 120.0, "rooms": 20},
             quick={"clients": 100, "seconds": 4.0, "rooms": 5, "think": (0.1, 0.3)},
             transport="mixed"),
    Scenario("timers", ("soukets",), "p99_ms", False,
             full={"rounds": 5000, "timeout": 5.0, "start_rate": 2000.0},
             quick={"rounds": 100, "timeout": 1.0, "start_rate": 1000.0}),
]


def export(ref: str, workdir: str) -> Path:
    """
    The source tree of this repository at git C{ref}, exported under
    C{workdir}.
    """
    target = Path(workdir) / f"soukets-{ref.replace('/', '_')}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(servers.CHECKOUT), "archive", ref],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def version(argv: list[str]) -> str:
    """
    The version number a program prints (C{v=7.0.15}, C{v2.9.10}), or
    C{unknown}.
    """
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"v=?(\d+(?:\.\d+)+)", out.stdout + out.stderr)
    return found.group(1) if found else "unknown"


def machine() -> dict:
    """
    What the figures were measured on.
    """
    import twisted

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(l.split(":", 1)[1].strip() for l in info if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "redis": "Redis " + version([servers.executable("redis-server") or "redis-server",
                                     "--version"]),
        "nats": "NATS " + version([servers.executable("nats-server") or "nats-server",
                                   "--version"]),
        "pinned": servers.can_pin(),
        "date": time.strftime("%Y-%m-%d"),
    }


def median_figures(runs: list[dict]) -> dict:
    # (A time series, the soak's, is kept whole in each run, not medianed.)
    return {key: statistics.median(r[key] for r in runs if key in r)
            for key in runs[0] if key != "run" and not isinstance(runs[0][key], list)}


def ratios(scenario: Scenario, runs: dict[str, list[dict]]) -> dict[str, float]:
    """
    soukets' figure over each other server's, turned so that above 1 means
    soukets did better: the median of the ratios within each run, which
    cancels the machine's drift from one run to the next.
    """
    key = scenario.headline
    mine = {r["run"]: r[key] for r in runs.get("soukets", []) if key in r}
    out = {}
    for peer, figures in runs.items():
        pairs = [(mine[r["run"]], r[key]) for r in figures
                 if peer != "soukets" and r["run"] in mine and key in r and r[key]]
        if pairs:
            out[peer] = statistics.median(
                a / b if scenario.higher_is_better else b / a for a, b in pairs)
    return out


def print_profile(path: str, lines: int = 25) -> None:
    import pstats

    print(f"top of {path}, by own time:")
    pstats.Stats(path).sort_stats("tottime").print_stats(lines)


def _extra(name: str, m: dict) -> str:
    if name == "pairs":
        notes = []
        cpu = ""
        if m.get("server_user_cpu") and m.get("messages_per_s"):
            # The server's CPU a message, in its own code (user) and in the
            # kernel's: where one server differs from another.
            per = 1e6 / m["messages_per_s"]
            cpu = (f"CPU us/msg: user {m['server_user_cpu'] * per:.1f}, kernel "
                   f"{(m['server_cpu'] - m['server_user_cpu']) * per:.1f}; ")
        for level in scenarios.PACED_LEVELS:
            key = f"paced{round(level * 100)}"
            short = m[f"{key}_achieved"] < 0.95 * m[f"{key}_rate"]
            notes.append(f"{m[f'{key}_rate'] / 1000:,.0f}k/s {m[f'{key}_p99_ms']:.1f}"
                         + ("(sat)" if short else ""))
        return cpu + "paced p99 ms: " + ", ".join(notes)
    if name == "conns":
        return f"RSS {m['rss_before_mib']:.1f} -> {m['rss_after_mib']:.1f} MiB"
    if name == "timers":
        return f"max {m['max_ms']:.1f} ms"
    return ""


def bound(figures: dict) -> str:
    """
    Which side set the pace of a result: the server (its process, or the
    core it is pinned to, over L{SATURATED} busy) or the load generator
    (its process over L{SATURATED} of a core), or neither (the kernel, or
    latency).

    The server's core counts because the kernel does part of a server's
    network work in softirq on that core, charged to no process.
    """
    if "server_cpu" not in figures or "loadgen_cpu" not in figures:
        return ""
    if max(figures["server_cpu"], figures.get("server_core_busy", 0)) >= SATURATED:
        return "server"
    return "loadgen" if figures["loadgen_cpu"] >= SATURATED else "neither"


def overflow_note(figures: dict) -> str:
    """
    A warning for a run during which the kernel dropped connections at a
    full accept queue: their clients tried again a second later, and that
    second, not the server, is in the figure.
    """
    dropped = figures.get("listen_overflows", 0)
    if not dropped:
        return ""
    return (f"  ({dropped:,} connections dropped at a full accept queue, "
            "retried a second later)")


def print_table(chosen: list[Scenario], medians: dict, results: dict, runs: int) -> None:
    print(f"\nmedians of {runs} run(s); sk/it = soukets / this server within each run "
          "(median), turned so that above 1 means soukets did better")
    print("srv CPU: the server's processes, core: how busy the core it is pinned to was, "
          "gen CPU: the load generator")
    print(f"{'scenario':<8} {'server':<16} {'headline':>26} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'srv CPU':>7} {'core':>5} {'gen CPU':>7} {'bound':>7} {'sk/it':>6} "
          f"{'per CPU-s':>11} {'sk/it':>6}  notes")
    for scenario in chosen:
        figures = medians.get(scenario.name, {})
        rs = ratios(scenario, results.get(scenario.name, {}))
        per_cpu = ratios(attrs.evolve(scenario, headline="per_server_cpu_s", higher_is_better=True),
                         results.get(scenario.name, {}))
        for server, m in figures.items():
            headline = f"{m[scenario.headline]:,.1f} {scenario.headline}"
            cells = [f"{m[k]:7.2f}" if k in m else f"{'':7}" for k in ("p50_ms", "p99_ms")]
            cpu = [f"{m[k]:{w}.0%}" if k in m else f"{'':{w}}"
                   for k, w in (("server_cpu", 7), ("server_core_busy", 5), ("loadgen_cpu", 7))]
            ratio = f"{rs[server]:6.2f}" if server in rs else f"{'':6}"
            work = (f"{m['per_server_cpu_s']:11,.0f}" if "per_server_cpu_s" in m else f"{'':11}")
            work_ratio = f"{per_cpu[server]:6.2f}" if server in per_cpu else f"{'':6}"
            print(f"{scenario.name:<8} {server:<16} {headline:>26} {' '.join(cells)} "
                  f"{' '.join(cpu)} {bound(m):>7} {ratio} {work} {work_ratio}  "
                  f"{_extra(scenario.name, m)}")


SATURATED = 0.9  # a process this busy (share of one core) may be what sets the pace


def crosscheck_verdict(headline: str, pair: dict) -> tuple[float, str]:
    """
    The Python generator's figure over the native one's for one run, and
    whether they must agree: within 10 % when neither generator nor server
    was saturated; otherwise which side was the bound.
    """
    native, python = pair["native"], pair["python"]
    ratio = python[headline] / native[headline]
    busy = [name for name, figures in (("native", native), ("python", python))
            if figures.get("loadgen_cpu", 0) >= SATURATED]
    if any(f.get("server_cpu", 0) >= SATURATED for f in (native, python)):
        busy.append("server")
    if busy:
        return ratio, "bound by " + ", ".join(busy)
    return ratio, agreement(ratio)


def agreement(ratio: float) -> str:
    """
    Whether two generators' figures, C{ratio} of one to the other, agree
    (within 10 %).
    """
    return "agree" if abs(ratio - 1) <= 0.10 else "DISAGREE"


def paced_verdict(pair: dict, level: int) -> tuple[float, str]:
    """
    The two generators' achieved rates in C{pairs}' paced phase at
    C{level} % of the floor's rate: a load that saturates neither side by
    design, where they must agree within 10 %.
    """
    key = f"paced{level}_achieved"
    ratio = pair["python"][key] / pair["native"][key]
    return ratio, agreement(ratio)


def print_crosscheck(chosen: list[Scenario], crosscheck: dict) -> None:
    print("\ncross-check: the Python generator's figure / the native one's")
    for scenario in chosen:
        for kind, pairs in crosscheck.get(scenario.name, {}).items():
            for pair in pairs:
                ratio, verdict = crosscheck_verdict(scenario.headline, pair)
                print(f"  {scenario.name:<8} {kind:<14} {ratio:5.2f}  "
                      f"(native loadgen {pair['native'].get('loadgen_cpu', 0):.0%}, "
                      f"python {pair['python'].get('loadgen_cpu', 0):.0%}, server "
                      f"{pair['native'].get('server_cpu', 0):.0%} / "
                      f"{pair['python'].get('server_cpu', 0):.0%})  {verdict}")
                if scenario.name == "pairs":
                    for level in (25, 50):
                        ratio, verdict = paced_verdict(pair, level)
                        print(f"  {'':<8} {'':<14} {ratio:5.2f}  (paced at {level} % "
                              f"of the floor, achieved messages/s)  {verdict}")


def main() -> int:
    # Stopped by a signal, stop the servers running too (the same finally
    # clauses as a failure or Ctrl-C): Python's default would leave them.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, to check the harness itself")
    parser.add_argument("--only", default=",".join(s.name for s in SCENARIOS))
    parser.add_argument("--servers", default=",".join(ALL_SERVERS))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--baseline", metavar="REF",
                        help="also run soukets as of git REF (as server soukets@REF), "
                        "for before/after figures in one command")
    parser.add_argument("--soukets-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for every soukets (repeatable), "
                        "e.g. --soukets-arg=--log-level=warn")
    parser.add_argument("--loadgen", choices=("auto", "python", "native", "both"), default="auto",
                        help="native: drive fanout, pairs, games and storm with "
                        "bench/loadgen.c (C, epoll; built with cc), which no server here "
                        "saturates; python: the asyncio generator, for every scenario; "
                        "both: each of those scenarios with each generator, and a "
                        "cross-check of the two; auto (default): native, or python "
                        "with --quick")
    parser.add_argument("--profile", metavar="DIR",
                        help="run soukets under cProfile; write DIR/SCENARIO.pstats "
                        "and print the top of each profile")
    args = parser.parse_args()
    wanted = args.servers.split(",")
    chosen = [s for s in SCENARIOS if s.name in args.only.split(",")]

    raise_fd_limit()
    if servers.can_pin():
        os.sched_setaffinity(0, {servers.LOADGEN_CPU})
        print(f"servers pinned to CPU {servers.SERVER_CPU}, "
              f"load generator to CPU {servers.LOADGEN_CPU}")
    else:
        print("NOT pinned: no taskset, or a single CPU; servers and load "
              "generator share the CPUs")
    unavailable = servers.install_peers(wanted)
    for peer, why in unavailable.items():
        print(f"{peer}: left out, {why}")

    results: dict[str, dict[str, list[dict]]] = {}
    crosscheck: dict[str, dict[str, list[dict]]] = {}
    failures = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        code = {}
        loadgen = args.loadgen if args.loadgen != "auto" else ("python" if args.quick else "native")
        native = scenarios.build_native(workdir) if loadgen in ("native", "both") else None
        if args.baseline:
            code[f"soukets@{args.baseline}"] = export(args.baseline, workdir)
            wanted.append(f"soukets@{args.baseline}")
        for run in range(args.runs):
            for scenario in chosen:
                extra = scenario.soukets_args(args.quick) + args.soukets_arg
                kinds = [*scenario.servers, *code]
                for kind in kinds:
                    if kind not in wanted or kind in unavailable:
                        continue
                    profile = None
                    if args.profile and kind == "soukets":
                        Path(args.profile).mkdir(parents=True, exist_ok=True)
                        profile = str(Path(args.profile) / f"{scenario.name}.pstats")
                    server = servers.start(kind, workdir, extra, profile,
                                           code.get(kind, servers.CHECKOUT),
                                           web=scenario.transport in ("websocket", "mixed"))
                    floor = results.get(scenario.name, {}).get("floor", [])
                    floor = floor[run] if len(floor) > run else None
                    drives = (["native"] if native and scenario.name in scenarios.NATIVE
                              else ["python"])
                    if loadgen == "both" and drives == ["native"]:
                        drives.append("python")
                    figures = None
                    try:
                        for drive in drives:
                            if drive == "python" and figures is not None:
                                # (The cross-check: a fresh server, the other generator.)
                                server.stop()
                                server = servers.start(kind, workdir, extra, None,
                                                       code.get(kind, servers.CHECKOUT))
                                # (The floor's own paced phases then aim at the
                                # same rates as its native run did.)
                                checked = asyncio.run(
                                    scenario.coroutine(server, args.quick, floor or figures))
                                crosscheck.setdefault(scenario.name, {}).setdefault(
                                    kind, []).append({"native": figures, "python": checked})
                            elif drive == "native":
                                params = dict(scenario.quick if args.quick else scenario.full)
                                if scenario.name == "pairs" and floor is not None:
                                    params["reference_rate"] = floor["messages_per_s"]
                                figures = scenarios.native(
                                    scenario.name, server,
                                    "soukets" if servers.is_soukets(kind) or servers.cluster_size(kind)
                                    else kind, native, **params)
                            else:
                                figures = asyncio.run(scenario.coroutine(server, args.quick, floor))
                    except scenarios.BenchFailure as e:
                        failures.append(f"run {run + 1}, {scenario.name}, {kind}: {e}")
                        print(f"FAILED {failures[-1]}", flush=True)
                        continue
                    finally:
                        server.stop()
                    if profile:
                        print_profile(profile)
                    figures["run"] = run + 1
                    if scenario.headline.endswith("_per_s") and figures.get("server_cpu"):
                        # The same work per second of the server's CPU: the
                        # fair comparison when the load generator, not the
                        # server, set the pace.
                        figures["per_server_cpu_s"] = (
                            figures[scenario.headline] / figures["server_cpu"])
                    results.setdefault(scenario.name, {}).setdefault(kind, []).append(figures)
                    print(f"run {run + 1} {scenario.name:<7} {kind:<8} "
                          f"{figures[scenario.headline]:,.1f} {scenario.headline}"
                          f"{overflow_note(figures)}", flush=True)

    medians = {name: {kind: median_figures(runs) for kind, runs in by_server.items()}
               for name, by_server in results.items()}
    print_table(chosen, medians, results, args.runs)
    if crosscheck:
        print_crosscheck(chosen, crosscheck)
    print(f"\ntook {time.monotonic() - started:.0f} s")
    report = {
        "machine": machine(),
        "args": vars(args),
        "unavailable": unavailable,
        "failures": failures,
        "medians": medians,
        "ratios": {s.name: ratios(s, results.get(s.name, {})) for s in chosen},
        "ratios_per_server_cpu": {
            s.name: ratios(attrs.evolve(s, headline="per_server_cpu_s", higher_is_better=True),
                           results.get(s.name, {}))
            for s in chosen if s.headline.endswith("_per_s")
        },
        "runs": results,
        "crosscheck": crosscheck,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'bench.json'}")
    if not args.no_plot:
        from plot import plot

        plot(report, out / "bench.png")
        if (out / "bench.png").exists():
            print(f"wrote {out / 'bench.png'}")
        from plot import plot_soak

        if plot_soak(report, out / "soak.png"):
            print(f"wrote {out / 'soak.png'}")
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

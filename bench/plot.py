"""
The benchmark's figures as one PNG: throughput, latency and memory per
server, from the report C{run.py} writes.

    python bench/plot.py bench/results/bench.json bench/results/bench.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"soukets": "#d62728", "floor": "#7f7f7f", "ceiling": "#17becf", "wsfloor": "#bcbd22", "redis": "#1f77b4", "nats": "#2ca02c",
           "soukets-redis1": "#9467bd", "soukets-redis2": "#8c564b"}
BASELINE = "#ff9896"  # soukets@REF, an earlier soukets

# (scenario, figure, title, scale)
PANELS = [
    ("*", "per_cpu_vs_redis", "soukets ÷ Redis, work per second of server CPU", 1),
    ("fanout", "deliveries_per_s", "fanout: deliveries/s (millions)", 1e-6),
    ("xfanout", "deliveries_per_s", "across nodes, fanout: deliveries/s (millions)", 1e-6),
    ("xgames", "games_per_s", "across nodes: games/s", 1),
    ("pairs", "messages_per_s", "pairs: messages/s (thousands)", 1e-3),
    ("conns", "kib_per_conn", "conns: server RSS per idle connection (KiB)", 1),
    ("wsfanout", "deliveries_per_s", "WebSocket fanout: deliveries/s (millions)", 1e-6),
    ("wsconns", "kib_per_conn", "WebSocket: server RSS per idle connection (KiB)", 1),
    ("fanout", "p99_ms", "fanout: p99 latency (ms)", 1),
    ("pairs", "p99_ms", "pairs, flat out: p99 round trip (ms)", 1),
    ("pairs", "paced", "pairs, paced: p99 round trip (ms) by load", 1),
    ("games", "games_per_s", "games/s (soukets only)", 1),
    ("games", "p99_ms", "games: last move to result, p99 (ms)", 1),
    ("timers", "p99_ms", "timers: lateness after deadline, p99 (ms)", 1),
    ("resume", "p99_ms", "resume: connection dropped to seat back, p99 (ms)", 1),
    ("storm", "connections_per_s", "reconnect storm: greeted connections/s", 1),
]


def _colour(server: str) -> str:
    return COLOURS.get(server, BASELINE if server.startswith("soukets@") else "black")


def _label(value: float) -> str:
    """
    A bar's figure: whole numbers with thousands separators from 1,000 up,
    three significant digits below.
    """
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _paced(ax, by_server: dict) -> None:
    """
    p99 round trip against the offered load, one line per server; a hollow
    marker where the server could not take that load.
    """
    for server, m in by_server.items():
        levels = sorted(int(k[5:-5]) for k in m if k.startswith("paced") and k.endswith("_rate"))
        rates = [m[f"paced{l}_rate"] / 1000 for l in levels]
        p99 = [m[f"paced{l}_p99_ms"] for l in levels]
        ax.plot(rates, p99, "-", color=_colour(server), label=server)
        for level, x, y in zip(levels, rates, p99):
            kept_up = m[f"paced{level}_achieved"] >= 0.95 * m[f"paced{level}_rate"]
            ax.plot([x], [y], "o", color=_colour(server),
                    fillstyle="full" if kept_up else "none")
    ax.set_xlabel("offered load (thousand messages/s)", fontsize=8)
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=8)


def plot(report: dict, path: Path) -> None:
    """
    Draw C{report}'s medians, one bar per server in each panel, to C{path}.
    """
    medians = report["medians"]
    per_cpu = {scenario: by_server["redis"]
               for scenario, by_server in report.get("ratios_per_server_cpu", {}).items()
               if "redis" in by_server}
    panels = [p for p in PANELS if p[0] in medians or (p[0] == "*" and per_cpu)]
    if not panels:
        return  # (the soak alone has its own plot)
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows),
                                squeeze=False)
    for ax, (scenario, key, title, scale) in zip(axes.flat, panels):
        servers = list(medians.get(scenario, ()))
        if key == "paced":
            _paced(ax, medians[scenario])
            ax.set_title(title, fontsize=9)
            continue
        if key == "per_cpu_vs_redis":
            # The fair comparison where a scenario cannot saturate every
            # server: above 1, soukets did more with each CPU-second.
            names = list(per_cpu)
            bars = ax.bar(names, [per_cpu[n] for n in names], color=_colour("soukets"))
            ax.axhline(1.0, color=_colour("redis"), linewidth=1)
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
            ax.set_title(title, fontsize=9)
            ax.tick_params(labelsize=8)
            ax.margins(y=0.15)
            continue
        values = [medians[scenario][s][key] * scale for s in servers]
        # Hatched: the load generator, not the server, was the limit.
        hatches = ["//" if medians[scenario][s].get("loadgen_cpu", 0) > 0.9 else ""
                   for s in servers]
        bars = ax.bar(servers, values, color=[_colour(s) for s in servers],
                      hatch=hatches, edgecolor="white")
        ax.bar_label(bars, labels=[_label(v) for v in values], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    m = report["machine"]
    pinning = "server on CPU 0, load generator on CPU 1" if m["pinned"] else "not pinned"
    figure.suptitle(f"soukets benchmark, {m['date']}: {m['cpu']}, {m['cpus']} CPUs, "
                    f"Python {m['python']}, Twisted {m['twisted']}, {m['redis']}, "
                    f"{m['nats']}\n{pinning}; medians of {report['args']['runs']} runs; "
                    "hatched: the load generator was saturated (over 90 % of its CPU), "
                    "so the server could do more", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.7 / (3.2 * rows)))  # (room for the title)
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    # python bench/plot.py REPORT.json OUT.png: draw a report again.
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))


def plot_soak(report: dict, path: Path) -> bool:
    """
    The soak's per-second series (server RSS, CPU, games/s, p99 from last
    move to result) over time, one line per run; L{False} if the report
    has no soak.
    """
    runs = report.get("runs", {}).get("soak", {}).get("soukets", [])
    if not runs:
        return False
    panels = [
        ("rss_mib", "server RSS (MiB)"),
        ("cpu", "server CPU (share of a core)"),
        ("games", "games/s"),
        ("p99_ms", "p99 last move to result (ms)"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), constrained_layout=True)
    for ax, (key, title) in zip(axes, panels):
        for run in runs:
            series = run["series"]
            ax.plot([s["t"] for s in series], [s[key] for s in series], color=_colour("soukets"),
                    alpha=0.4 + 0.6 / len(runs), label=f"run {run.get('run', '')}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("seconds")
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    clients = runs[0].get("clients", 0)
    figure.suptitle(f"soak: {clients:,} clients (half over WebSocket) playing and chatting, "
                    f"{report.get('machine', {}).get('date', '')}", fontsize=10)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True

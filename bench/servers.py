"""
The servers the benchmark measures, each started on a free loopback port
(pinned to CPU 0 when it can be) and stopped by PID: soukets, the floor
relay (C{floor.py}), Redis and NATS.  Also what the benchmark reads of a
server process from /proc: its RSS, its CPU time and its open files; and
of the host: how busy a CPU was, and how many connections the kernel
dropped at a full accept queue.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
SERVER_CPU = 0
LOADGEN_CPU = 1
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# Debian package and executable of each peer the script installs if missing.
PEER_PACKAGES = {"redis": ("redis-server", "redis-server"),
                 "nats": ("nats-server", "nats-server")}


def core_ticks(cpu: int) -> tuple[int, int]:
    """
    How long CPU C{cpu} has been busy, and how long in all, in clock ticks
    (from /proc/stat).  Busy is all but idle and I/O wait: the kernel's
    network work done there in softirq, which no process is charged for,
    counts.
    """
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if name == f"cpu{cpu}":
                ticks = [int(f) for f in fields[:8]]
                return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def listen_overflows() -> int:
    """
    How many connections this host's kernel has dropped because a listening
    socket's accept queue was full (TcpExt ListenOverflows): each such
    client tries again only a second later.
    """
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split()))["ListenOverflows"])
    raise RuntimeError("no TcpExt in /proc/net/netstat")


def can_pin() -> bool:
    """
    Whether the servers and the load generator can each have a CPU.
    """
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def executable(name: str) -> str | None:
    """
    Where C{name} is, looking in the sbin directories too (Debian puts
    nats-server in /usr/sbin).
    """
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


def install_peers(names: list[str]) -> dict[str, str]:
    """
    Install the Debian packages of the peers in C{names} that are missing
    (as root, with apt-get).

    @return: why each peer that is still unavailable is so.
    """
    missing = [n for n in names if n in PEER_PACKAGES and not executable(PEER_PACKAGES[n][1])]
    unavailable: dict[str, str] = {}
    if not missing:
        return unavailable
    packages = [PEER_PACKAGES[n][0] for n in missing]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(packages)} with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        command = ["apt-get", "install", "-y", "-qq", *packages]
        if subprocess.run(command, env=env, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(command, env=env, capture_output=True)
    for name in missing:
        if not executable(PEER_PACKAGES[name][1]):
            unavailable[name] = (f"{PEER_PACKAGES[name][0]} is not installed and "
                                 "could not be (needs root and apt-get)")
    return unavailable


def _pinned(argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(SERVER_CPU), *argv] if can_pin() else argv


@attrs.define
class RunningServer:
    """
    One server process the benchmark started, listening on C{port}.
    """

    kind: str
    port: int
    process: subprocess.Popen
    lines_port: int | None = None  # soukets serving its web site on port

    @property
    def ports(self) -> list[int]:
        """
        Where clients may connect (one port; several for a cluster).
        """
        return [self.port]

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        """
        The process's resident set size, in KiB.
        """
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.pid}")

    def cpu_seconds(self) -> float:
        """
        User and system CPU time the process has used so far.
        """
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def core(self) -> int | None:
        """
        The one CPU the process may run on, if it is pinned to one.
        """
        cpus = os.sched_getaffinity(self.pid)
        return next(iter(cpus)) if len(cpus) == 1 else None

    def open_files(self) -> int:
        """
        How many sockets the process has open (not files: soukets' counter
        opens and closes its own now and then, which would make a count of
        every descriptor miss by one).
        """
        count = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                count += os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:")
            except OSError:
                pass  # closed meanwhile
        return count

    def stop(self) -> None:
        """
        Stop the process by its PID: SIGTERM, then SIGKILL if it lingers.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


@attrs.define
class Cluster:
    """
    soukets nodes on one Redis (kind C{soukets-redisN}, N nodes), started
    and stopped together.  Clients may connect to any of L{ports}; the CPU
    and memory figures are those of every process, Redis included.
    """

    kind: str
    nodes: list[RunningServer]
    redis: RunningServer

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def _all(self) -> list[RunningServer]:
        return [*self.nodes, self.redis]

    def rss_kib(self) -> int:
        return sum(p.rss_kib() for p in self._all())

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self._all())

    def core(self) -> None:
        return None  # (its processes are not pinned)

    def redis_cpu_seconds(self) -> float:
        return self.redis.cpu_seconds()

    def open_files(self) -> int:
        return sum(p.open_files() for p in self.nodes)

    def stop(self) -> None:
        for process in self._all():  # (the nodes first: they leave Redis cleanly)
            try:
                process.stop()
            except Exception:
                process.process.kill()


def cluster_size(kind: str) -> int:
    """
    How many nodes server C{kind} has (0: it is not a cluster).
    """
    match = re.fullmatch(r"soukets-redis(\d)", kind)
    return int(match.group(1)) if match else 0


def is_soukets(kind: str) -> bool:
    """
    Whether C{kind} is soukets: this checkout's, or C{soukets@REF}, an
    earlier version to compare with (see C{run.py --baseline}).
    """
    return kind == "soukets" or kind.startswith("soukets@")


def no_web(code: Path) -> list[str]:
    """
    C{--no-web} for a soukets that serves a web site by default (so that
    two of them, or a baseline beside this checkout, never compete for its
    port); nothing for an earlier one, which has no such option.
    """
    options = code / "soukets" / "options.py"
    return ["--no-web"] if '"no-web"' in options.read_text() else []


def server_argv(kind: str, port: int, workdir: str, soukets_args: list[str],
                profile: str | None = None, code: Path = CHECKOUT,
                web: bool = False, lines_port: int | None = None) -> list[str]:
    """
    The command line that runs server C{kind} on 127.0.0.1:C{port}; soukets
    under cProfile, writing to C{profile}, if given.
    """
    if is_soukets(kind):
        python = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
        if web:  # the measured port is the web site's; lines elsewhere
            listen = ["--listen", f"tcp:{lines_port or free_port()}:interface=127.0.0.1:backlog=4096",
                      "--web", f"tcp:{port}:interface=127.0.0.1:backlog=4096"]
        else:
            listen = ["--listen", f"tcp:{port}:interface=127.0.0.1:backlog=4096",
                      *no_web(code)]
        return [*python, "-m", "soukets", *listen,
                "--max-clients", "100000", "--max-rate", "10000000",
                "--counter-file", os.path.join(workdir, f"clients-{port}.json"),
                *soukets_args]
    if kind == "wsfloor":
        return [sys.executable, str(HERE / "ws_floor.py"), str(port)]
    if kind == "floor":
        return [sys.executable, str(HERE / "floor.py"), str(port)]
    if kind == "ceiling":
        return [sys.executable, str(HERE / "ceiling.py"), str(port)]
    if kind == "redis":
        return [executable("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--maxclients", "20000", "--tcp-backlog", "4096",
                "--protected-mode", "no", "--dir", workdir, "--loglevel", "warning"]
    if kind == "nats":
        return [executable("nats-server"), "-a", "127.0.0.1", "-p", str(port)]
    raise ValueError(kind)


def start(kind: str, workdir: str, soukets_args: list[str] = (),
          profile: str | None = None, code: Path = CHECKOUT,
          web: bool = False) -> RunningServer | Cluster:
    """
    Start server C{kind} on a free loopback port, soukets from the source
    tree C{code} (with C{web}, its web site on that port); return once it
    accepts connections.  A cluster's processes are not pinned: its nodes
    share the machine's CPUs with the load generator.
    """
    size = cluster_size(kind)
    if size:
        redis = start("redis", workdir)
        engine = ["--engine", f"redis://127.0.0.1:{redis.port}"]
        nodes = []
        for _ in range(size):
            port = free_port()
            argv = server_argv("soukets", port, workdir, [*soukets_args, *engine], None, code, web)
            with open(os.path.join(workdir, f"{kind}-{port}.log"), "wb") as log:
                nodes.append(_started("soukets", port, subprocess.Popen(
                    argv, cwd=workdir, env=dict(os.environ, PYTHONPATH=str(code)),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.DEVNULL)))
        return Cluster(kind, nodes, redis)
    port = free_port()
    lines_port = free_port() if web and is_soukets(kind) else None
    env = dict(os.environ, PYTHONPATH=str(code))
    # soukets' log goes to a file, as an operator's would (its per-game
    # record included); the others log nothing per message.
    with open(os.path.join(workdir, f"{kind}-{port}.log"), "wb") as log:
        process = subprocess.Popen(
            _pinned(server_argv(kind, port, workdir, list(soukets_args), profile, code, web,
                                lines_port)),
            cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=log if is_soukets(kind) else subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = _started(kind, port, process)
    server.lines_port = lines_port
    return server


def _started(kind: str, port: int, process: subprocess.Popen) -> RunningServer:
    server = RunningServer(kind, port, process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} exited at start with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{kind} did not start within {START_TIMEOUT} s")

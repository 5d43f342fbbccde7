"""
Tests for the benchmark harness in C{bench/}: its counting and checks, and
one quick run of every scenario against soukets, the floor, Redis and
NATS (figures are not checked, only that every run was exact).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import CHECKOUT, environment

sys.path.insert(0, str(CHECKOUT / "bench"))

import scenarios  # noqa: E402
import run as run_module  # noqa: E402
import servers  # noqa: E402
from dialects import DIALECTS, MEASURED, WARMUP  # noqa: E402


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data


def counting(kind: str, check_order: bool = False) -> scenarios.Counting:
    async def make() -> scenarios.Counting:
        conn = scenarios.Counting(DIALECTS[kind], check_order=check_order)
        conn.connection_made(FakeTransport())
        return conn

    return asyncio.run(make())


def delivery(kind: str, seq: int, marker: str = MEASURED, stamp: bool = False) -> bytes:
    """
    What server C{kind} sends a subscriber for one published payload.
    """
    text = scenarios.payload(seq, marker, stamp)
    if kind == "soukets":
        return f'bench;{{"type":"message","from":"x-1","data":"{text}"}}\n'.encode()
    if kind in ("floor", "ceiling"):
        return DIALECTS[kind].publish("bench", text)
    if kind == "redis":
        return (f">3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n${len(text)}\r\n{text}\r\n").encode()
    return f"MSG bench 1 {len(text)}\r\n{text}\r\n".encode()


class CountingTests(SynchronousTestCase):
    def test_counts_across_any_cut(self) -> None:
        """
        Deliveries are counted exactly wherever the stream is cut, in every
        dialect; warm-up messages are counted apart.
        """
        for kind in DIALECTS:
            stream = delivery(kind, 0, WARMUP) + b"".join(
                delivery(kind, seq, stamp=seq % 3 == 0) for seq in range(10))
            for size in (1, 2, 3, 7, 50, len(stream)):
                conn = counting(kind, check_order=True)
                for start in range(0, len(stream), size):
                    conn.data_received(stream[start:start + size])
                self.assertEqual((conn.measured, conn.warm), (10, 1), (kind, size))
                self.assertIsNone(conn.error, (kind, size))
                self.assertEqual(len(conn.latencies), 4, (kind, size))

    def test_gap_detected(self) -> None:
        conn = counting("soukets", check_order=True)
        conn.data_received(delivery("soukets", 0) + delivery("soukets", 2))
        self.assertIsInstance(conn.error, scenarios.BenchFailure)

    def test_reorder_detected(self) -> None:
        conn = counting("nats", check_order=True)
        conn.data_received(delivery("nats", 1) + delivery("nats", 0))
        self.assertIsInstance(conn.error, scenarios.BenchFailure)

    def test_sampled_reorder_detected(self) -> None:
        """
        Without checking every message, a connection still checks the order
        of the sampled ones.
        """
        conn = counting("redis")
        conn.data_received(delivery("redis", 50, stamp=True) + delivery("redis", 0, stamp=True))
        self.assertIsInstance(conn.error, scenarios.BenchFailure)
        conn = counting("redis")
        conn.data_received(delivery("redis", 0, stamp=True) + delivery("redis", 50, stamp=True))
        self.assertIsNone(conn.error)

    def test_hello(self) -> None:
        self.assertEqual(counting("redis").transport.written, b"HELLO 3\r\n")
        self.assertIn(b'"echo":false', counting("nats").transport.written)

    def test_percentiles(self) -> None:
        figures = scenarios.percentiles([i / 1000 for i in range(1, 101)])
        self.assertEqual((figures["p50_ms"], figures["p99_ms"], figures["max_ms"]),
                         (51.0, 100.0, 100.0))
        self.assertRaises(scenarios.BenchFailure, scenarios.percentiles, [])


class QuickRunTests(SynchronousTestCase):
    def test_every_scenario_every_server(self) -> None:
        """
        C{bench/run.py --quick} runs every scenario against every server it
        applies to, with no failed check, and writes its report and plot.
        """
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run(
                [sys.executable, str(CHECKOUT / "bench" / "run.py"), "--quick",
                 "--runs", "1", "--out", out],
                env=environment(), capture_output=True, text=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            report = json.loads((Path(out) / "bench.json").read_text())
            self.assertTrue((Path(out) / "bench.png").stat().st_size > 10_000)
            self.assertTrue((Path(out) / "soak.png").stat().st_size > 10_000)
        self.assertEqual(report["failures"], [])
        self.assertEqual(report["unavailable"], {})
        everyone = {"soukets", "floor", "ceiling", "redis", "nats"}
        medians = report["medians"]
        for name in ("fanout", "pairs", "conns"):
            servers = everyone - {"ceiling"} if name == "fanout" else everyone
            self.assertEqual(set(medians[name]), servers, name)
            self.assertEqual(set(report["ratios"][name]), servers - {"soukets"})
        self.assertEqual(set(medians["games"]), {"soukets"})
        self.assertEqual(set(medians["timers"]), {"soukets"})
        [soak] = report["runs"]["soak"]["soukets"]
        self.assertGreaterEqual(len(soak["series"]), 3)
        self.assertGreater(soak["chat_heard"], 0)
        clusters = {"soukets-redis1", "soukets-redis2"}
        self.assertEqual(set(medians["xfanout"]), {"soukets", "redis"} | clusters)
        self.assertEqual(set(medians["xgames"]), {"soukets"} | clusters)
        self.assertGreater(medians["fanout"]["soukets"]["deliveries_per_s"], 0)
        self.assertGreater(medians["games"]["soukets"]["games_per_s"], 0)
        for name, servers in (("fanout", everyone - {"ceiling"}), ("games", {"soukets"})):
            for server in servers:
                self.assertRegex(run.stdout, rf"(?m)^{name} +{server} ")


def children(pid: int) -> list[int]:
    """
    The PIDs of process C{pid}'s children.
    """
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except FileNotFoundError:
        return []


def running(pid: int) -> bool:
    """
    Whether process C{pid} exists and is not a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class SignalTests(SynchronousTestCase):
    def test_stopped_by_sigterm_stops_its_servers(self) -> None:
        """
        C{bench/run.py} stopped by SIGTERM stops the server it was running
        before it exits, as it does when a run fails.
        """
        with tempfile.TemporaryDirectory() as out:
            bench = subprocess.Popen(
                [sys.executable, str(CHECKOUT / "bench" / "run.py"), "--only", "pairs",
                 "--servers", "soukets", "--runs", "1", "--loadgen", "python", "--no-plot",
                 "--out", out],
                env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started: list[int] = []
            try:
                deadline = time.monotonic() + 60
                while not started and time.monotonic() < deadline:
                    started = children(bench.pid)
                    time.sleep(0.1)
                self.assertTrue(started, "no server was started")
                time.sleep(1)  # (the server up and under load)
                bench.send_signal(signal.SIGTERM)
                self.assertEqual(bench.wait(timeout=60), 128 + signal.SIGTERM)
                self.assertEqual([pid for pid in started if running(pid)], [])
            finally:
                if bench.poll() is None:
                    bench.kill()
                    bench.wait()
                for pid in started:
                    if running(pid):
                        os.kill(pid, signal.SIGKILL)


class PathBenchmarkTests(SynchronousTestCase):
    """
    C{bench/gamepath.py} and C{bench/pairpath.py}: soukets' own code alone,
    on this tree and on a git ref, with every frame checked.
    """

    def measure(self, script: str, count: str, unit: str) -> None:
        """
        C{script} measures this tree and HEAD and prints each figure.
        """
        run = subprocess.run(
            [sys.executable, str(CHECKOUT / "bench" / script), f"--{count}", "300",
             "--repeat", "2", "--baseline", "HEAD"],
            env=environment(), capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertRegex(run.stdout, rf"(?m)^soukets +[0-9.]+ us/{unit} \(best of 2: ")
        self.assertRegex(run.stdout, rf"(?m)^soukets@HEAD +[0-9.]+ us/{unit} .* as fast$")

    def fails(self, code: str) -> str:
        """
        Run C{code} with bench/ importable, in a process of its own (a
        measurement sets up the daemon's logging and collector), expecting
        it to fail; what it wrote to stderr.
        """
        run = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'bench'); "
                              + code], cwd=str(CHECKOUT),
                             env=environment(), capture_output=True, text=True, timeout=120)
        self.assertNotEqual(run.returncode, 0)
        return run.stderr

    def test_games_of_this_tree_and_a_baseline(self) -> None:
        self.measure("gamepath.py", "games", "game")

    def test_a_refused_move_fails_the_games(self) -> None:
        """
        A frame the server refuses fails the measurement rather than
        counting as a game.
        """
        stderr = self.fails("import gamepath; gamepath.play(20, players=10, move=b'lizard')")
        self.assertIn("error frame", stderr)

    def test_messages_of_this_tree_and_a_baseline(self) -> None:
        self.measure("pairpath.py", "messages", "message")

    def test_a_message_not_relayed_fails_the_pairs(self) -> None:
        """
        A frame the server does not relay (here an unknown type, answered
        with an error) fails the measurement.
        """
        stderr = self.fails(
            "import pairpath; pairpath.play(40, pairs=10, frame_type='publsh')")
        self.assertIn("client 1 was written [], not b'pair0;", stderr)


class SharedCoreTests(SynchronousTestCase):
    """
    C{bench/sharedcore.py}: this tree and a git ref driven at once, sharing
    one core.
    """

    def run_sharedcore(self, *args: str) -> subprocess.CompletedProcess:
        """
        Run C{bench/sharedcore.py} with C{args} (stopped by PID, and the
        test failed, if it takes over 300 s).
        """
        bench = subprocess.Popen(
            [sys.executable, str(CHECKOUT / "bench" / "sharedcore.py"), *args],
            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = bench.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            bench.terminate()  # (it stops its servers by PID on SIGTERM)
            stdout, stderr = bench.communicate(timeout=60)
            self.fail("sharedcore.py did not finish in 300 s:\n" + stdout + stderr)
        return subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)

    def assert_two_rounds_against(self, peer: str, *args: str) -> None:
        """
        Two quick rounds of C{pairs} with C{args}: each round's figures for
        soukets and C{peer} and their ratio are printed, then the median.
        """
        self.assertTrue(servers.can_pin(), "the harness needs taskset and two CPUs")
        run = self.run_sharedcore("--quick", "--rounds", "2", *args)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        for number in (1, 2):
            self.assertRegex(run.stdout, rf"(?m)^round {number}: soukets [0-9,]+ messages a "
                             rf"CPU-second \([0-9]+% of the core\), {peer} [0-9,]+ "
                             r"\([0-9]+%\): [0-9.]+ x$")
        self.assertRegex(run.stdout, r"(?m)^pairs: soukets does [0-9.]+ x the work a "
                         rf"CPU-second of {peer} \(median of 2 rounds, ")

    def test_pairs_of_this_tree_and_a_baseline(self) -> None:
        """
        Both servers run pinned to the same CPU at the same time (this needs
        taskset and two CPUs, as C{bench/run.py} does), every message of
        both is checked by the native generator, and each round's ratio of
        work per CPU-second is printed, then their median.
        """
        self.assert_two_rounds_against("soukets@HEAD", "--baseline", "HEAD")

    def test_pairs_against_the_floor(self) -> None:
        """
        With C{--against floor}, the peer on the shared core is the floor
        relay, driven in its own dialect.
        """
        self.assert_two_rounds_against("floor", "--against", "floor")

    def test_against_a_server_the_scenario_does_not_run(self) -> None:
        """
        C{--against} takes only a server the scenario runs in C{run.py}
        besides soukets, and says which; nothing is started otherwise.
        """
        run = self.run_sharedcore("--scenario", "fanout", "--against", "ceiling")
        self.assertEqual((run.returncode, run.stdout), (2, ""))
        self.assertEqual(run.stderr, "--against: fanout compares soukets with floor, redis, nats\n")
        run = self.run_sharedcore("--scenario", "games", "--against", "floor")
        self.assertEqual(run.returncode, 2)
        self.assertEqual(run.stderr, "--against: games runs soukets alone (use --baseline)\n")

    def test_starting_order(self) -> None:
        """
        The two servers start in the order given in odd rounds and in the
        other order in even ones, so that neither is always first.
        """
        import sharedcore

        trees = {"soukets": Path("here"), "soukets@HEAD": Path("there")}
        self.assertEqual(list(sharedcore.starting_order(trees, 1)), ["soukets", "soukets@HEAD"])
        self.assertEqual(list(sharedcore.starting_order(trees, 2)), ["soukets@HEAD", "soukets"])
        self.assertEqual(list(sharedcore.starting_order(trees, 3)), ["soukets", "soukets@HEAD"])
        self.assertEqual(sharedcore.starting_order(trees, 2), trees)

    def test_figure(self) -> None:
        """
        The work a server did per CPU-second it used: a server busy half
        the time at 20,000 messages a second did 40,000 a CPU-second.
        """
        import sharedcore

        self.assertEqual(sharedcore.per_cpu_second(
            {"messages_per_s": 20000.0, "server_cpu": 0.5}, "pairs"), 40000.0)
        self.assertEqual(sharedcore.per_cpu_second(
            {"games_per_s": 3000.0, "server_cpu": 1.0}, "games"), 3000.0)


class NativeLoadGeneratorTests(SynchronousTestCase):
    def test_counts_every_delivery_of_every_dialect(self) -> None:
        """
        bench/loadgen.c builds with the system's cc and drives fanout against
        soukets, the floor, Redis and NATS, with every delivery counted and
        subscriber 0's order checked (it exits non-zero otherwise).
        """
        with tempfile.TemporaryDirectory() as workdir:
            program = scenarios.build_native(workdir)
            for kind in ("soukets", "floor", "redis", "nats"):
                extra = ["--no-auto-queue"] if kind == "soukets" else []
                server = servers.start(kind, workdir, extra)
                try:
                    figures = scenarios.native_fanout(server, kind, program, subscribers=10,
                                                      messages=500, window=100)
                finally:
                    server.stop()
                self.assertGreater(figures["deliveries_per_s"], 0, kind)
                self.assertGreater(figures["p99_ms"], 0, kind)
                self.assertEqual(figures["loadgen"], "native")

    def test_server_core_busy(self) -> None:
        """
        The native generator reports how busy the server's core was when the
        server is pinned to one and the phase outlasts the kernel's 10 ms
        ticks (10,000 round trips through a Python server do), and how much
        of the server's CPU went to its own code.
        """
        with tempfile.TemporaryDirectory() as workdir:
            program = scenarios.build_native(workdir)
            server = servers.start("soukets", workdir, ["--no-auto-queue"])
            try:
                figures = scenarios.native_pairs(server, "soukets", program, channels=10,
                                                 exchanges=200)
            finally:
                server.stop()
        self.assertGreater(figures["messages_per_s"], 0)
        self.assertGreater(figures["server_user_cpu"], 0)
        self.assertLessEqual(figures["server_user_cpu"], figures["server_cpu"])
        if servers.can_pin():
            self.assertGreater(figures["server_core_busy"], 0)
            self.assertLessEqual(figures["server_core_busy"], 1)
        else:
            self.assertNotIn("server_core_busy", figures)

    def test_both_generators_every_native_scenario(self) -> None:
        """
        C{bench/run.py --loadgen both} drives fanout, pairs, games and storm
        with the native generator against every server they apply to, runs
        the Python generator against a fresh server as a cross-check, and
        reports both, with no failed check.
        """
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run(
                [sys.executable, str(CHECKOUT / "bench" / "run.py"), "--quick", "--runs", "1",
                 "--loadgen", "both", "--only", "fanout,pairs,games,storm", "--no-plot",
                 "--out", out],
                env=environment(), capture_output=True, text=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            report = json.loads((Path(out) / "bench.json").read_text())
        self.assertEqual(report["failures"], [])
        expected = {"fanout": {"floor", "soukets", "redis", "nats"},
                    "pairs": {"floor", "ceiling", "soukets", "redis", "nats"},
                    "games": {"soukets"}, "storm": {"soukets", "redis", "nats"}}
        for name, kinds in expected.items():
            self.assertEqual(set(report["runs"][name]), kinds, name)
            self.assertEqual(set(report["crosscheck"][name]), kinds, name)
            for kind in kinds:
                [figures] = report["runs"][name][kind]
                self.assertEqual(figures["loadgen"], "native")
                [pair] = report["crosscheck"][name][kind]
                self.assertNotIn("loadgen", pair["python"])
        for kind in expected["storm"]:
            [storm] = report["runs"]["storm"][kind]
            self.assertGreaterEqual(storm["listen_overflows"], 0)
            # The core's share is counted in 10 ms ticks: a quick storm can
            # be over before one passes, and then the figure is left out
            # rather than made up.
            if servers.can_pin() and storm["elapsed_s"] >= 0.05:
                self.assertIn("server_core_busy", storm)
            if "server_core_busy" in storm:
                self.assertGreaterEqual(storm["server_core_busy"], 0)
                self.assertLessEqual(storm["server_core_busy"], 1)
        pairs = report["runs"]["pairs"]["soukets"][0]
        # The server's CPU, and the part of it in its own code (user mode).
        self.assertGreaterEqual(pairs["server_user_cpu"], 0)
        self.assertLessEqual(pairs["server_user_cpu"], pairs["server_cpu"])
        for level in (25, 50, 80):
            self.assertGreater(pairs[f"paced{level}_achieved"], 0)
            self.assertGreater(pairs[f"paced{level}_p99_ms"], 0)
        self.assertIn("cross-check", run.stdout)

    def test_bound(self) -> None:
        """
        Each result says which side set its pace: a busy server first, then
        a busy load generator, else neither.
        """
        self.assertEqual(run_module.bound({"server_cpu": 0.95, "loadgen_cpu": 0.97}), "server")
        self.assertEqual(run_module.bound({"server_cpu": 0.6, "loadgen_cpu": 0.97}), "loadgen")
        self.assertEqual(run_module.bound({"server_cpu": 0.6, "loadgen_cpu": 0.3}), "neither")
        self.assertEqual(run_module.bound({"rss_kib": 1}), "")
        # The server's core full, partly with the kernel's work for it.
        self.assertEqual(run_module.bound(
            {"server_cpu": 0.8, "server_core_busy": 0.93, "loadgen_cpu": 0.3}), "server")
        self.assertEqual(run_module.bound(
            {"server_cpu": 0.8, "server_core_busy": 0.85, "loadgen_cpu": 0.3}), "neither")

    def test_overflow_note(self) -> None:
        """
        A run during which the kernel dropped connections says so.
        """
        self.assertEqual(run_module.overflow_note({"listen_overflows": 0}), "")
        self.assertEqual(run_module.overflow_note({}), "")
        self.assertIn("1,204 connections dropped at a full accept queue",
                      run_module.overflow_note({"listen_overflows": 1204}))

    def test_crosscheck_verdict(self) -> None:
        """
        Two generators must agree within 10 % when neither they nor the
        server were saturated; otherwise the verdict names the bound.
        """
        def pair(native: float, python: float, gen: float = 0.5, server: float = 0.5) -> dict:
            return {"native": {"x": native, "loadgen_cpu": 0.3, "server_cpu": server},
                    "python": {"x": python, "loadgen_cpu": gen, "server_cpu": 0.4}}

        verdict = run_module.crosscheck_verdict
        self.assertEqual(verdict("x", pair(100, 95)), (0.95, "agree"))
        self.assertEqual(verdict("x", pair(100, 80))[1], "DISAGREE")
        self.assertEqual(verdict("x", pair(100, 80, gen=0.97))[1], "bound by python")
        self.assertEqual(verdict("x", pair(100, 80, server=0.95))[1], "bound by server")
        paced = {"native": {"paced25_achieved": 1000.0}, "python": {"paced25_achieved": 950.0}}
        self.assertEqual(run_module.paced_verdict(paced, 25), (0.95, "agree"))
        paced["python"]["paced25_achieved"] = 800.0
        self.assertEqual(run_module.paced_verdict(paced, 25)[1], "DISAGREE")

    def test_games_check_every_result(self) -> None:
        """
        The native games mode fails a run that stops making progress,
        rather than wait: here two players queue for lobbies of three.
        """
        with tempfile.TemporaryDirectory() as workdir:
            program = scenarios.build_native(workdir)
            server = servers.start("soukets", workdir, ["--no-auto-queue", "--lobby-size", "3"])
            try:
                with self.assertRaises(scenarios.BenchFailure) as failed:
                    scenarios.native_games(server, program, clients=2, games_each=1)
            finally:
                server.stop()
        self.assertIn("the games stopped", str(failed.exception))

    def test_loss_is_a_failure(self) -> None:
        """
        A server that drops messages fails the run: a floor whose relay
        routes each line to its channel's other members but forgets every
        tenth (fanout's order check, pairs' stall check).
        """
        import socket
        import threading

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        members: dict[bytes, list[socket.socket]] = {}
        lines = [0]

        def relay(conn: socket.socket) -> None:
            buffer = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                *whole, buffer = (buffer + data).split(b"\n")
                for line in whole:
                    channel = line.partition(b";")[0]
                    if b'"subscribe"' in line:
                        members.setdefault(channel, []).append(conn)
                        continue
                    lines[0] += 1
                    if lines[0] % 10:
                        for member in list(members.get(channel, [])):
                            if member is not conn:
                                try:
                                    member.sendall(line + b"\n")
                                except OSError:
                                    pass

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=relay, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        self.addCleanup(listener.close)
        server = servers.RunningServer("floor", port, process=None)  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as workdir:
            program = scenarios.build_native(workdir)
            with self.assertRaises(scenarios.BenchFailure):
                scenarios.native_fanout(server, "floor", program, subscribers=3, messages=300, window=50)
            with self.assertRaises(scenarios.BenchFailure):
                scenarios.native_pairs(server, "floor", program, channels=5, exchanges=50,
                                       paced_seconds=0.1)


class HostFiguresTests(SynchronousTestCase):
    """
    What the benchmark reads of the host: how busy a CPU was, and the
    connections dropped at a full accept queue.
    """

    def test_busy_core(self) -> None:
        """
        A process spinning on a CPU it is pinned to makes that CPU busy.
        """
        cpu = max(os.sched_getaffinity(0))
        spin = subprocess.Popen(
            [sys.executable, "-c", "import time\nend = time.time() + 0.5\nwhile time.time() < end: pass"])
        try:
            os.sched_setaffinity(spin.pid, {cpu})
            busy0, total0 = servers.core_ticks(cpu)
            time.sleep(0.4)
            busy, total = servers.core_ticks(cpu)
        finally:
            spin.wait(10)
        self.assertGreater(total, total0)
        self.assertGreater((busy - busy0) / (total - total0), 0.5)

    def test_listen_overflows(self) -> None:
        """
        Connections refused at a full accept queue are counted.
        """
        import socket

        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # and never accepts
        before = servers.listen_overflows()
        clients = []
        for _ in range(8):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(listener.getsockname())
            clients.append(client)
        deadline = time.monotonic() + 5
        while servers.listen_overflows() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        for client in clients:
            client.close()
        self.assertGreater(servers.listen_overflows(), before)

"""Foreign load: which processes are the run's, and what the others used, on real
processes. "Foreign" processes are started by a launcher that exits at once, so they
are reparented away from the test (to init or the machine's subreaper) and descend from
no process of it; "ours" are the test's own children. Processes whose name the tests
check set it themselves (``prctl(PR_SET_NAME)``), so other processes of the machine
(other ``python``s) do not mix into their figures."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Dict, List

import psutil
import pytest

from trt_ray_bench.telemetry import foreign
from trt_ray_bench.telemetry.foreign import (Accounting, ForeignSampler, GpuProcesses, driver_identity, is_trb_command,
                                             process_name)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl names and /proc: Linux")
READERS = [pytest.param(foreign._proc_snapshot, id="proc"), pytest.param(foreign._psutil_snapshot, id="psutil")]

LAUNCH = textwrap.dedent("""
    import subprocess, sys
    exe = sys.executable if sys.argv[1].startswith("ray::") else None  # a Ray worker's title as argv[0]
    p = subprocess.Popen(sys.argv[1:], executable=exe, start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(p.pid, flush=True)
""")


def _named(name: str, body: str) -> str:
    """Python source that names its process ``name`` (the kernel's short name), then runs ``body``."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {name.encode()!r}, 0, 0, 0)\n{body}"


def _orphan(*argv: str) -> int:
    """Start ``argv`` as a process that is not ours (its launcher has exited); its pid."""
    out = subprocess.run([sys.executable, "-c", LAUNCH, *argv], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.split()[0])
    deadline = time.time() + 10
    while time.time() < deadline:  # the launcher has exited: reparented, no longer below us
        try:
            if psutil.Process(pid).ppid() != os.getpid() and not _below(pid, os.getpid()):
                return pid
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    raise AssertionError(f"process {pid} is still below the test process")


def _below(pid: int, ancestor: int) -> bool:
    return any(p.pid == ancestor for p in psutil.Process(pid).parents())


def _kill(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _by_metric(readings) -> Dict[str, float]:
    return {r[0]: r[1] for r in readings}


def _wait_name(pid: int, name: str) -> None:
    deadline = time.time() + 10
    while psutil.Process(pid).name() != name:
        assert time.time() < deadline, f"{pid} never named itself {name}"
        time.sleep(0.02)


# --------------------------------------------------------------------------- ownership
@linux
@pytest.mark.parametrize("reader", READERS)
def test_the_drivers_descendants_are_ours_and_the_rest_foreign(reader):
    """The driver (this process) and its children and grandchildren are ours; a process
    reparented away from it, and init, are not; a kernel thread is neither. A driver named
    by its pid with another start time (a pid of another machine) names nothing."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(g.pid, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    grandchild = int(child.stdout.readline())
    other = _orphan(sys.executable, "-c", "import time; time.sleep(60)")
    try:
        acc = Accounting(driver_identity(), reader=reader)
        acc.update()
        assert acc.ours(os.getpid()) is True
        assert acc.ours(child.pid) is True and acc.ours(grandchild) is True
        assert acc.ours(other) is False
        assert acc.ours(1) is False
        kthreads = [p.pid for p in psutil.process_iter() if p.pid == 2 or (p.ppid() == 2)]
        if kthreads:  # a container may show none
            assert acc.ours(kthreads[-1]) is None
        # a process born after the first pass is classified by its parent
        late = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        acc.update()
        assert acc.ours(late.pid) is True
        late.kill()
        late.wait()
        # the driver's pid with another start: not the driver; `me` (here the foreign
        # process, standing in for a Monitor outside Ray) is ours with its descendants
        stranger = Accounting({"pid": os.getpid(), "start": -5.0}, me=other, reader=reader)
        stranger.update()
        assert stranger.ours(os.getpid()) is False and stranger.ours(child.pid) is False
        assert stranger.ours(other) is True
    finally:
        child.kill()
        child.wait()
        _kill(grandchild, other)


def test_trb_commands_are_recognised():
    yes = [
        ["/home/u/venv/bin/python", "/home/u/venv/bin/trb", "run", "exp.yaml"],
        ["/usr/bin/python3", "-u", "/home/u/venv/bin/trb", "sweep", "sw.yaml", "--address", "h:6379"],
        ["trb", "run", "x.yaml", "--set", "timing.iterations=5"],
        ["python", "-m", "trt_ray_bench.cli", "run", "exp.yaml"],
        ["python3", "-m", "trt_ray_bench", "sweep", "s.yaml"],
        ["ray::ModelActor.run_phase"], ["ray::ModelActor"],
    ]
    no = [
        [], ["trb", "compare", "results/x"], ["trb", "doctor"], ["python", "-m", "pytest", "tests/test_cli.py"],
        ["python", "-m", "trt_ray_bench.cli", "report", "r"], ["ray::IDLE"], ["ray::Monitor"],
        ["/usr/bin/vim", "trb", "run"],
    ]
    assert [is_trb_command(a) for a in yes] == [True] * len(yes)
    assert [is_trb_command(a) for a in no] == [False] * len(no)
    assert process_name("ray::ModelActor", ["ray::ModelActor.run_phase"]) == "ray::ModelActor"
    assert process_name("ray::DashboardA", ["ray::DashboardAgent"]) == "ray::DashboardAgent"
    assert process_name("python3", ["/usr/bin/python3", "-c", "pass"]) == "python3"
    assert process_name("gnome-shell-cal", ["/usr/libexec/gnome-shell-calendar-server"]) == \
        "gnome-shell-calendar-server"


# --------------------------------------------------------------------------- CPU time
@linux
@pytest.mark.parametrize("reader", READERS)
def test_a_foreign_burner_is_counted_and_named_and_ours_is_not(reader):
    """A foreign process burning a core: its CPU time, as its own /proc figures say, is
    what the accounting gives its name, with its pid. Our own burning child appears
    nowhere."""
    burner = _orphan(sys.executable, "-c", _named("trbburn", "while True: pass"))
    ours = subprocess.Popen([sys.executable, "-c", _named("trbours", "while True: pass")])
    try:
        _wait_name(burner, "trbburn")
        _wait_name(ours.pid, "trbours")
        acc = Accounting(driver_identity(), reader=reader)
        before = _cpu(burner)
        t_prev, _ = acc.update()
        seen: List[Dict[str, float]] = []
        got = 0.0  # core-seconds: each period's share times that period's length
        for _ in range(2):
            time.sleep(1.0)
            t, readings = acc.update()
            seen.append(_by_metric(readings))
            got += seen[-1]["foreign_cpu_pct:trbburn"] / 100 * (t - t_prev) / 1e9
            t_prev = t
        used = _cpu(burner) - before
        # it ran: 2 s of wall time, of which a loaded 2-core CI machine gave it 0.28 s once
        assert used > 0.1
        assert got == pytest.approx(used, rel=0.1, abs=0.05)
        assert all(m["foreign_pid:trbburn"] == burner for m in seen)
        assert all(m["foreign_cpu_pct"] >= m["foreign_cpu_pct:trbburn"] for m in seen)
        assert not any(k.endswith(":trbours") for m in seen for k in m)
        assert not any(k.startswith("foreign_pid") and v == ours.pid for m in seen for k, v in m.items())
        assert all(0 <= m["scan_ms"] < 50 for m in seen)
    finally:
        ours.kill()
        ours.wait()
        _kill(burner)


@linux
@pytest.mark.parametrize("depth", [1, 2])
def test_short_lived_children_count_through_their_parent(depth):
    """A foreign parent running short busy children one after another (a build's
    compilers; with depth 2 each through a shell-like middle process): those seen count
    as themselves, those born and gone between two passes through the parent's
    reaped-children time, those seen and then gone with their own parent count once; in
    all, what the parent's own figures say."""
    kid = _named("trbkid", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass")  # seen by a pass
    if depth == 2:
        kid = _named("trbmid", f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {kid!r}])")
    parent = _named("trbparent", textwrap.dedent(f"""
        import subprocess, sys, time
        for _ in range(6):
            subprocess.run([sys.executable, "-c", {kid!r}])
        open(sys.argv[1], "w").close()
        time.sleep(60)
    """))
    flag = f"/tmp/trb-foreign-done-{os.getpid()}-{depth}"
    acc = Accounting(driver_identity())
    acc.update()
    pid = _orphan(sys.executable, "-c", parent, flag)
    names = ("trbkid", "trbmid", "trbparent")
    try:
        total = 0.0
        deadline = time.time() + 60
        while True:
            done = os.path.exists(flag)
            time.sleep(0.3)
            readings = acc.update()[1]
            m = _by_metric(readings)
            period = next(r[3] for r in readings if r[0] == "foreign_cpu_pct")
            total += sum(m.get(f"foreign_cpu_pct:{n}", 0) for n in names) * period / 100
            if done:
                break
            assert time.time() < deadline
        truth = _cpu(pid)  # its own time and its six reaped children's (and theirs)
        assert truth > 1.0
        assert total == pytest.approx(truth, rel=0.1, abs=0.1), (total, truth)
    finally:
        _kill(pid)
        if os.path.exists(flag):
            os.remove(flag)


# --------------------------------------------------------------------------- other trb runs
@linux
def test_other_trb_runs_are_counted_by_their_driver(tmp_path):
    """A foreign ``trb run`` with a model actor below it is one other run, named by the
    driver's pid; a model actor of another Ray whose driver is elsewhere is another."""
    script = tmp_path / "trb"
    script.write_text(textwrap.dedent("""
        import subprocess, sys, time
        subprocess.Popen(["ray::ModelActor.run_phase", "-c", "import time; time.sleep(60)"], executable=sys.executable)
        time.sleep(60)
    """))
    driver = _orphan(sys.executable, str(script), "run", "exp.yaml")
    lone = _orphan("ray::ModelActor", "-c", "import time; time.sleep(60)")
    actor = None
    try:
        deadline = time.time() + 10
        while not psutil.Process(driver).children():
            assert time.time() < deadline
            time.sleep(0.05)
        actor = psutil.Process(driver).children()[0].pid
        acc = Accounting(driver_identity())
        m = _by_metric(acc.update()[1])
        assert m[f"foreign_trb_run:{driver}"] == 2  # the driver and its actor
        assert m[f"foreign_trb_run:{lone}"] == 1
        assert m["foreign_trb_runs"] >= 2  # (and any real one of another user of this machine)
        assert f"foreign_trb_run:{actor}" not in m
        assert f"foreign_trb_run:{os.getpid()}" not in m  # pytest is no trb run, and ours
    finally:
        _kill(driver, lone, *([actor] if actor else []))


# --------------------------------------------------------------------------- the cost
@linux
def test_a_pass_costs_well_under_one_percent_of_a_core():
    """One pass (every process's CPU time) against the period it runs at: the figure is
    printed, the bound is 1 % of a core at ``INTERVAL_S``."""
    acc = Accounting(driver_identity())
    acc.update()
    costs = []
    for _ in range(10):
        time.sleep(0.05)
        costs.append(_by_metric(acc.update()[1])["scan_ms"])
    costs.sort()
    t0 = time.process_time()
    n = sum(1 for _ in psutil.process_iter(["pid", "name", "cpu_times", "ppid", "cmdline"]))
    full = (time.process_time() - t0) * 1e3
    print(f"\none pass over {len(acc.snap)} processes: median {costs[5]:.2f} ms CPU "
          f"({costs[5] / 10 / foreign.INTERVAL_S:.3f} % of a core at {foreign.INTERVAL_S:g} s); "
          f"psutil.process_iter with five attributes over {n}: {full:.2f} ms")
    assert costs[5] < 0.01 * foreign.INTERVAL_S * 1e3


# --------------------------------------------------------------------------- the sampler
@linux
def test_the_sampler_streams_and_covers_the_tail():
    """As the Monitor runs it: a baseline at start, a pass per period in its own thread,
    and one at stop, so the last period is covered; all on the samples' clock."""
    rows: List[tuple] = []
    s = ForeignSampler(driver_identity(), interval_s=0.2)
    t0 = time.perf_counter_ns()
    s.start(lambda t, readings: rows.extend((t, r) for r in readings))
    time.sleep(0.7)
    warnings = s.stop()
    t1 = time.perf_counter_ns()
    assert warnings == []
    cpu = [(t, r) for t, r in rows if r[0] == "foreign_cpu_pct"]
    assert len(cpu) >= 3 and all(t0 <= t <= t1 for t, _ in cpu)
    assert t1 - cpu[-1][0] < 0.1e9  # the stop's own pass
    # consecutive periods tile the time: each avg_s is the gap to the previous pass
    for (ta, _), (tb, rb) in zip(cpu, cpu[1:]):
        assert rb[3] == pytest.approx((tb - ta) / 1e9, abs=0.01)


# --------------------------------------------------------------------------- the GPU's list
class FakeNvmlProcesses:
    """A stand-in for pynvml's process lists, for machines without a GPU: pynvml's own
    error classes; the lists return the given (real) pids; names in ``fail`` raise the
    given pynvml error. What a real GPU lists is tested below where NVML answers."""

    def __init__(self, pynvml, compute, graphics=(), mps=(), fail=None):
        for name in dir(pynvml):
            if name.startswith("NVMLError") or name == "NVMLLibraryMismatchError":
                setattr(self, name, getattr(pynvml, name))
        self.fail = fail or {}
        self.calls: Dict[str, int] = {}

        def procs(items):
            return [type("P", (), {"pid": pid, "usedGpuMemory": mem})() for pid, mem in items]

        self.functions = {
            "nvmlDeviceGetComputeRunningProcesses": lambda h: procs(compute),
            "nvmlDeviceGetComputeRunningProcesses_v2": lambda h: procs(compute),
            "nvmlDeviceGetGraphicsRunningProcesses": lambda h: procs(graphics),
            "nvmlDeviceGetGraphicsRunningProcesses_v2": lambda h: procs(graphics),
            "nvmlDeviceGetMPSComputeRunningProcesses": lambda h: procs(mps),
            "nvmlDeviceGetMPSComputeRunningProcesses_v2": lambda h: procs(mps),
        }
        for name, fn in self.functions.items():
            setattr(self, name, self._counted(name, fn))

    def _counted(self, name, fn):
        def call(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.fail:
                raise self.fail[name]
            return fn(*args)

        return call


@pytest.fixture(scope="module")
def pynvml():
    return pytest.importorskip("pynvml")


def test_the_stand_in_lists_exist_in_pynvml_with_the_same_arguments(pynvml):
    fake = FakeNvmlProcesses(pynvml, [])
    for name, fn in fake.functions.items():
        inspect.signature(getattr(pynvml, name)).bind(*range(len(inspect.signature(fn).parameters)))


@linux
def test_gpu_processes_not_ours_are_named_with_their_memory(pynvml):
    """On the experiment's GPU: our child is not counted, a foreign process is (by name,
    pid, MiB), a pid this machine does not show is unresolved; the graphics list this
    'GPU' does not support is dropped after its first failure, and the compute list
    falls back to the older call when the newer is missing in the driver."""
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = _orphan(sys.executable, "-c", _named("trbgpu", "import time; time.sleep(60)"))
    gone = 2**22 + 17  # above any pid_max: no such process here
    try:
        _wait_name(other, "trbgpu")
        nv = FakeNvmlProcesses(pynvml, [(ours.pid, 300 * 2**20), (other, 1536 * 2**20), (gone, None)],
                               mps=[(other, 512 * 2**20)],
                               fail={"nvmlDeviceGetGraphicsRunningProcesses": pynvml.NVMLError_NotSupported(),
                                     "nvmlDeviceGetGraphicsRunningProcesses_v2": pynvml.NVMLError_NotSupported(),
                                     "nvmlDeviceGetComputeRunningProcesses":
                                         pynvml.NVMLLibraryMismatchError("unversioned")})
        gp = GpuProcesses(nv, "handle")
        acc = Accounting(driver_identity())
        for _ in range(2):
            m = _by_metric(acc.update(gp.read())[1])
        assert m["foreign_gpu_procs"] == 1
        assert m["foreign_gpu_mem_mib:trbgpu"] == 1536  # compute's figure: one process counted once
        assert m["foreign_gpu_pid:trbgpu"] == other
        assert m["gpu_procs_unresolved"] == 1
        assert set(gp.unavailable) == {"Graphics"}
        assert nv.calls["nvmlDeviceGetGraphicsRunningProcesses"] == 1  # not asked again
        assert nv.calls["nvmlDeviceGetComputeRunningProcesses"] == 1
        assert nv.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 2
        s = ForeignSampler(driver_identity(), gpu=(nv, "handle"))
        s.start(lambda t, r: None)
        assert any("graphics process list is not read" in w for w in s.stop())
    finally:
        ours.kill()
        ours.wait()
        _kill(other)


CUDA_CONTEXT = textwrap.dedent("""
    import ctypes, sys, time
    cuda = ctypes.CDLL("libcuda.so.1")
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    assert cuda.cuInit(0) == 0 and cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
    assert cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev) == 0
    print("ready", flush=True)
    time.sleep(60)
""")


@linux
@pytest.mark.gpu
def test_a_foreign_cuda_process_on_a_real_gpu(pynvml):
    """Where NVML answers: a process holding a CUDA context on GPU 0 that is not ours is
    listed by NVML's compute list and named."""
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVML here: {exc}")
    other = _orphan(sys.executable, "-c", _named("trbcuda", CUDA_CONTEXT))
    try:
        gp = GpuProcesses(pynvml, handle)
        acc = Accounting(driver_identity())
        deadline = time.time() + 30
        while True:
            m = _by_metric(acc.update(gp.read())[1])
            if "foreign_gpu_pid:trbcuda" in m or time.time() > deadline:
                break
            time.sleep(0.5)
        assert m.get("foreign_gpu_pid:trbcuda") == other, (m, gp.unavailable)
        assert m["foreign_gpu_procs"] >= 1
        print("\nGPU lists unavailable here:", gp.unavailable, "; used MiB:", m.get("foreign_gpu_mem_mib:trbcuda"))
    finally:
        _kill(other)
        pynvml.nvmlShutdown()

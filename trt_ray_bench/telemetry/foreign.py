"""What else used the machine while a run measured: other processes' CPU time, other trb
runs, and other processes on the experiment's GPU. A streaming sampler of the Monitor
(its own thread, its own period), on the samples' clock (``perf_counter_ns``), source
``foreign``.

Ours. The run's processes are: the driver (named by its pid *and* its start time, so a
driver on another machine names nothing here) and its descendants; the raylet the
Monitor descends from and its descendants (the Monitor, the model actors, Ray's agents);
every process whose command line names that raylet's Ray session (``gcs_server``, the
dashboard and log monitor of a ``ray start`` node, whose parent is gone); and the raylet's
parent where it is a ``trb`` command (the driver of a local Ray: ``trb run``,
``trb sweep``). A process is classified once, when first seen, and keeps its class.
Kernel threads are neither ours nor foreign. Everything else is foreign.

Every ``INTERVAL_S`` one pass reads every process's CPU time (user + system: on Linux
``/proc/<pid>/stat``, elsewhere psutil) and records, over the period since the previous
pass (``avg_s`` = that period, ending at ``t_ns``):

- ``foreign_cpu_pct``: the CPU time of every foreign process, in % of one core (100 =
  one core fully used; 2 cores fully used = 200). A process born in the period counts
  from its start; one that ended in the period counts up to the previous pass, and the
  rest of its time through its parent's reaped-children time (so a build's short-lived
  compilers count, under the name of the ``make`` that waited for them). Init's
  reaped-children time, and any that exceeds what the machine could run in the period,
  is an orphan's whole life, not the period's work, and is left out.
- ``foreign_cpu_pct:<name>``: the same per process name (summed over the processes of
  that name), for names at or above ``NAME_MIN_PCT``; ``foreign_pid:<name>`` (unit
  ``pid``): the busiest process of that name, ``foreign_pid:<name>#2`` and ``#3`` the
  next ones where they too used ``NAME_MIN_PCT``.
- ``scan_ms``: the pass's own CPU time (the accounting's cost; a fraction of a
  millisecond for 100 processes).

At every pass (instantaneous, ``avg_s`` 0):

- ``foreign_trb_runs``: other trb runs on the machine: a foreign ``trb run`` /
  ``trb sweep``, ``python -m trt_ray_bench...``, or a model actor (``ray::ModelActor``)
  of another Ray; ``foreign_trb_run:<pid>`` (value: its processes seen) for each, named
  by its driver's pid (else its first model actor's).
- where NVML lists the experiment's GPU's processes (compute, graphics and MPS clients):
  ``foreign_gpu_procs`` (how many are not ours; the MPS server is not counted, its
  clients are), ``foreign_gpu_mem_mib:<name>`` (their used memory, NaN where NVML gives
  none) and ``foreign_gpu_pid:<name>``; ``gpu_procs_unresolved``: processes NVML lists
  whose pid names no process here (another pid namespace: a container), whose owner
  cannot be told. A list this GPU or driver cannot give is dropped after its first
  failure, as in ``telemetry.nvml``.

On a Jetson psutil's (the kernel's) per-process CPU times are the same as anywhere, so
the CPU accounting applies as is; tegrastats' CPU loads are the whole machine's.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from ._collect import Reading

SOURCE = "foreign"
#: seconds between passes: rows of a run are seconds long, and a pass reads every process
INTERVAL_S = 1.0
#: per-name metrics for names whose processes used at least this (% of one core) in a period
NAME_MIN_PCT = 1.0
#: per name, the pids recorded (busiest first; beyond the first, those at or above NAME_MIN_PCT)
PIDS_NAMED = 3
#: the MPS daemon serves every client of its GPU (ours too): its clients are what counts
MPS_NAMES = ("nvidia-cuda-mps-server", "nvidia-cuda-mps-control")
#: kernel thread flag of /proc/<pid>/stat
_PF_KTHREAD = 0x00200000
#: a Ray session's name, as it appears in its processes' command lines
_SESSION = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+")
_TRB_VERBS = ("run", "sweep")
_ACTOR_TITLE = "ray::ModelActor"

try:
    _TCK = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):  # pragma: no cover - not a POSIX system
    _TCK = 100.0

#: one process in a snapshot: start (its identity with the pid), ppid, own CPU seconds,
#: its reaped children's CPU seconds, short name (comm), kernel thread
Rec = Tuple[float, int, float, float, str, bool]


def _proc_snapshot(skip: Set[int]) -> Dict[int, Rec]:
    """Every process from ``/proc/<pid>/stat`` (Linux), less the pids in ``skip`` (kernel
    threads already seen). A process gone or unreadable meanwhile is left out."""
    out: Dict[int, Rec] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid in skip:
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
        except OSError:  # ended, or hidden from us (hidepid)
            continue
        lp, rp = s.find(b"("), s.rfind(b")")
        x = s[rp + 2:].split()
        try:
            out[pid] = (float(x[19]), int(x[1]), (int(x[11]) + int(x[12])) / _TCK,
                        (int(x[13]) + int(x[14])) / _TCK, s[lp + 1:rp].decode("utf-8", "replace"),
                        bool(int(x[6]) & _PF_KTHREAD))
        except (IndexError, ValueError):
            continue
    return out


def _psutil_snapshot(skip: Set[int]) -> Dict[int, Rec]:
    """The same through psutil (other systems). Processes whose times cannot be read
    (another user's, on systems that hide them) are left out."""
    import psutil

    out: Dict[int, Rec] = {}
    for p in psutil.process_iter():
        if p.pid in skip or p.pid == 0:
            continue
        try:
            with p.oneshot():
                ct, ppid, name = p.cpu_times(), p.ppid(), p.name()
            out[p.pid] = (p.create_time(), ppid, ct.user + ct.system,
                          getattr(ct, "children_user", 0.0) + getattr(ct, "children_system", 0.0), name,
                          sys.platform.startswith("linux") and (p.pid == 2 or ppid == 2))
        except psutil.Error:
            continue
    return out


def _reader() -> Callable[[Set[int]], Dict[int, Rec]]:
    return _proc_snapshot if os.path.isfile("/proc/self/stat") else _psutil_snapshot


def _cmdline(pid: int) -> List[str]:
    """The process's arguments ([] where unreadable). A title set by setproctitle (Ray's
    ``ray::ModelActor.run_phase``) is one argument padded with spaces."""
    try:
        if os.path.isfile("/proc/self/cmdline"):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
            args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
        else:
            import psutil

            args = psutil.Process(pid).cmdline()
    except Exception:  # noqa: BLE001 - ended, or not ours to read
        return []
    while args and not args[-1].strip():
        args.pop()
    return [a.strip() if i == 0 else a for i, a in enumerate(args)]


def process_name(comm: str, argv: List[str]) -> str:
    """A stable, readable name: the kernel's short name, completed from the command line
    where the kernel cut it at 15 characters (as psutil does); a Ray worker's title
    without its method (``ray::ModelActor.run_phase`` -> ``ray::ModelActor``)."""
    name = comm
    if argv:
        first = argv[0].split(" ")[0]
        base = os.path.basename(first)
        if len(comm) >= 15 and base.startswith(comm):
            name = base
    if name.startswith("ray::"):
        name = "ray::" + name[5:].split(".")[0].split("(")[0]
    return name


def is_trb_command(argv: List[str]) -> bool:
    """A trb run: ``trb run|sweep ...`` (the console script, also through its
    interpreter), ``python -m trt_ray_bench... run|sweep``, or a model actor of Ray."""
    if not argv:
        return False
    if argv[0].startswith(_ACTOR_TITLE):
        return True
    return _trb_driver(argv)


def _trb_driver(argv: List[str]) -> bool:
    """``trb run|sweep``: the program itself, or a Python interpreter's script or module
    after its options."""
    if not argv:
        return False
    if os.path.basename(argv[0]) == "trb":
        return len(argv) > 1 and argv[1] in _TRB_VERBS
    if not os.path.basename(argv[0]).startswith("python"):
        return False
    for i in range(1, min(len(argv), 4)):
        a = argv[i]
        if a == "-m":
            return (i + 1 < len(argv) and argv[i + 1].split(".")[0] == "trt_ray_bench"
                    and any(v in _TRB_VERBS for v in argv[i + 2:]))
        if not a.startswith("-"):  # the script
            return os.path.basename(a) == "trb" and i + 1 < len(argv) and argv[i + 1] in _TRB_VERBS
    return False


def driver_identity() -> Dict[str, float]:
    """What names the driver to the Monitor: its pid and its start as the Monitor's
    snapshot reads it (a pid alone could name another machine's process)."""
    pid = os.getpid()
    try:
        if _reader() is _proc_snapshot:
            with open(f"/proc/{pid}/stat", "rb") as f:
                start = float(f.read().rpartition(b")")[2].split()[19])
        else:
            import psutil

            start = psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - unreadable: the driver names nothing, its Ray still does
        start = -1.0
    return {"pid": pid, "start": start}


class _Info:
    __slots__ = ("comm", "name", "argv", "ours", "trb", "driver")

    def __init__(self, comm: str, name: str, argv: List[str], ours: bool):
        self.comm, self.name, self.argv, self.ours = comm, name, argv, ours
        self.trb = (not ours) and is_trb_command(argv)
        self.driver = self.trb and _trb_driver(argv)


class Accounting:
    """Snapshots of every process's CPU time and what the foreign ones used in between.
    ``driver``: :func:`driver_identity` of the run's driver (None: none on this machine);
    ``me``: the process whose raylet ancestor (or, outside Ray, itself) is ours."""

    def __init__(self, driver: Optional[dict] = None, me: Optional[int] = None,
                 reader: Optional[Callable[[Set[int]], Dict[int, Rec]]] = None,
                 name_min_pct: float = NAME_MIN_PCT):
        self.driver = driver or {}
        self.me = os.getpid() if me is None else me
        self.read = reader or _reader()
        self.name_min_pct = name_min_pct
        self.info: Dict[Tuple[int, float], _Info] = {}
        self.roots: Set[Tuple[int, float]] = set()
        self.session: Optional[str] = None
        self.kthreads: Set[int] = set()
        self.prev: Optional[Dict[int, Rec]] = None
        self.prev_t = 0
        self.snap: Dict[int, Rec] = {}
        self.passes = 0
        self.ncpu = os.cpu_count() or 1

    # ------------------------------------------------------------------ ownership
    def _find_roots(self, snap: Dict[int, Rec]) -> None:
        d = snap.get(int(self.driver.get("pid", -1)))
        if d is not None and d[0] == self.driver.get("start"):
            self.roots.add((int(self.driver["pid"]), d[0]))
        pid, seen = self.me, set()
        raylet = None
        while pid in snap and pid not in seen and pid > 1:
            seen.add(pid)
            if snap[pid][4] == "raylet":
                raylet = pid
                break
            pid = snap[pid][1]
        if raylet is None:  # not under Ray (a test, a tool): this process and its descendants
            if self.me in snap:
                self.roots.add((self.me, snap[self.me][0]))
            return
        self.roots.add((raylet, snap[raylet][0]))
        m = _SESSION.search(" ".join(_cmdline(raylet)))
        self.session = m.group(0) if m else None
        parent = snap[raylet][1]
        if parent in snap and parent > 1 and _trb_driver(_cmdline(parent)):  # a local Ray's trb driver
            self.roots.add((parent, snap[parent][0]))

    def _classify(self, snap: Dict[int, Rec], pid: int) -> Optional[_Info]:
        """The process's info (made at first sight, its name refreshed when its short name
        changes: a Ray worker becoming an actor); None for a kernel thread."""
        rec = snap[pid]
        key = (pid, rec[0])
        info = self.info.get(key)
        if info is not None:
            if info.comm != rec[4]:
                argv = _cmdline(pid)
                self.info[key] = info = _Info(rec[4], process_name(rec[4], argv), argv, info.ours)
            return info
        if rec[5] or pid == 2:
            self.kthreads.add(pid)
            return None
        # ancestors first (iteratively: chains can be long), each classified once
        chain = [pid]
        while True:
            ppid = snap[chain[-1]][1]
            if ppid not in snap or ppid == chain[-1] or (ppid, snap[ppid][0]) in self.info or len(chain) > 512:
                break
            chain.append(ppid)
        for p in reversed(chain):
            r = snap[p]
            k = (p, r[0])
            if k in self.info:
                continue
            if r[5] or p == 2:
                self.kthreads.add(p)
                continue
            argv = _cmdline(p)
            parent = self.info.get((r[1], snap[r[1]][0])) if r[1] in snap else None
            ours = (k in self.roots or (parent is not None and parent.ours)
                    or (self.session is not None and any(self.session in a for a in argv)))
            self.info[k] = _Info(r[4], process_name(r[4], argv), argv, ours)
        return self.info.get(key)

    def ours(self, pid: int) -> Optional[bool]:
        """Whether ``pid`` (in the latest snapshot) is the run's; None where it is not
        there or is a kernel thread."""
        if pid not in self.snap:
            return None
        info = self._classify(self.snap, pid)
        return None if info is None else info.ours

    # ------------------------------------------------------------------ a pass
    def update(self, gpu: Optional[List[Tuple[int, Optional[float]]]] = None) -> Tuple[int, List[Reading]]:
        """One pass: ``(t_ns, readings)``; no readings on the first (the baseline), but
        the GPU's. ``gpu``: the (pid, used MiB or None) NVML lists on the experiment's GPU."""
        c0 = time.thread_time() if hasattr(time, "thread_time") else time.process_time()
        if self.passes % 60 == 0:
            self.kthreads.clear()  # a kernel thread's pid reused (rare): looked at again now and then
        snap = self.read(self.kthreads)
        t = time.perf_counter_ns()
        if self.prev is None:
            self._find_roots(snap)
        self.snap = snap
        out: List[Reading] = []
        for pid in snap:
            self._classify(snap, pid)
        if self.prev is not None:
            out.extend(self._cpu(snap, (t - self.prev_t) / 1e9))
        out.extend(self._trb_runs(snap))
        if gpu is not None:
            out.extend(self._gpu(snap, gpu))
        self.prev, self.prev_t = snap, t
        self.passes += 1
        c1 = time.thread_time() if hasattr(time, "thread_time") else time.process_time()
        if self.passes > 1:
            out.append(("scan_ms", (c1 - c0) * 1e3, "ms"))
        return t, out

    def _cpu(self, snap: Dict[int, Rec], period: float) -> List[Reading]:
        prev = self.prev or {}
        # Processes that ended: what was seen of them reaches their reaper's children
        # time with the rest (the part after the last pass): a process gone with its
        # parent (``timeout`` and the ``pytest`` it waited for) counts for the nearest
        # ancestor still here.
        ended = {pid: r for pid, r in prev.items()
                 if (pid not in snap or snap[pid][0] != r[0]) and pid not in self.kthreads and not r[5]}
        gone: Dict[int, float] = {}  # pid -> the last seen total of its descendants that ended
        for r in ended.values():
            up, hops = r[1], 0
            while up in ended and hops < 64:
                up, hops = ended[up][1], hops + 1
            gone[up] = gone.get(up, 0.0) + r[2] + r[3]
        by_name: Dict[str, list] = {}  # name -> [cpu s, [(cpu s, pid) of each process]]
        total = 0.0
        cap = period * self.ncpu  # no process tree can use more in a period
        for pid, r in snap.items():
            info = self.info.get((pid, r[0]))
            if info is None or info.ours:
                continue
            old = prev.get(pid)
            if old is not None and old[0] != r[0]:
                old = None
            own = r[2] - old[2] if old is not None else r[2]  # born in the period: all of it
            kids = (r[3] - old[3] if old is not None else r[3]) - gone.get(pid, 0.0)
            if kids > cap or pid == 1:
                # more than the machine could run in the period: an orphan's whole life
                # reaped by init or a subreaper, not this period's work
                kids = 0.0
            cpu = max(0.0, own) + max(0.0, kids)
            if cpu <= 0:
                continue
            total += cpu
            e = by_name.setdefault(info.name, [0.0, []])
            e[0] += cpu
            e[1].append((cpu, pid))
        if period <= 0:
            return []
        out: List[Reading] = [("foreign_cpu_pct", total / period * 100, "%", period)]
        for name, (cpu, procs) in sorted(by_name.items(), key=lambda kv: -kv[1][0]):
            pct = cpu / period * 100
            if pct < self.name_min_pct:
                break
            out.append((f"foreign_cpu_pct:{name}", pct, "%", period))
            procs.sort(reverse=True)
            for k, (c, pid) in enumerate(procs[:PIDS_NAMED]):
                if k and c / period * 100 < self.name_min_pct:
                    break
                out.append((f"foreign_pid:{name}" + (f"#{k + 1}" if k else ""), float(pid), "pid", period))
        return out

    def _trb_runs(self, snap: Dict[int, Rec]) -> List[Reading]:
        runs: Dict[object, List[int]] = {}  # group -> [name pid, processes]
        for pid, r in snap.items():
            info = self.info.get((pid, r[0]))
            if info is None or not info.trb:
                continue
            group, show = self._trb_group(snap, pid)
            e = runs.setdefault(group, [show, 0])
            e[0] = min(e[0], show) if not isinstance(group, int) else group
            e[1] += 1
        out: List[Reading] = [("foreign_trb_runs", float(len(runs)), "count")]
        out.extend((f"foreign_trb_run:{show}", float(n), "count") for show, n in sorted(runs.values()))
        return out

    def _trb_group(self, snap: Dict[int, Rec], pid: int) -> Tuple[object, int]:
        """Which other run a trb process belongs to: its highest ancestor that is a trb
        driver (by that pid); else the raylet it runs under (named by its own pid)."""
        driver, raylet, p, seen = None, None, pid, set()
        while p in snap and p not in seen and p > 1:
            seen.add(p)
            info = self.info.get((p, snap[p][0]))
            if info is not None and info.driver:
                driver = p
            if raylet is None and snap[p][4] == "raylet":
                raylet = p
            p = snap[p][1]
        if driver is not None:
            return driver, driver
        return ("raylet", raylet if raylet is not None else pid), pid

    def _gpu(self, snap: Dict[int, Rec], procs: List[Tuple[int, Optional[float]]]) -> List[Reading]:
        names: Dict[str, List[float]] = {}  # name -> [MiB (NaN: unknown), pid]
        foreign: Set[int] = set()
        unresolved: Set[int] = set()
        for pid, mib in procs:
            if pid in foreign or pid in unresolved or pid <= 0:
                continue
            if pid not in snap:
                unresolved.add(pid)
                continue
            info = self._classify(snap, pid)
            if info is None or info.ours or info.name in MPS_NAMES:
                continue
            foreign.add(pid)
            e = names.setdefault(info.name, [float("nan"), float(pid)])
            if mib is not None:
                e[0] = mib if e[0] != e[0] else e[0] + mib
        out: List[Reading] = [("foreign_gpu_procs", float(len(foreign)), "count")]
        for name, (mib, pid) in sorted(names.items()):
            out.append((f"foreign_gpu_mem_mib:{name}", mib, "MiB"))
            out.append((f"foreign_gpu_pid:{name}", pid, "pid"))
        if unresolved:
            out.append(("gpu_procs_unresolved", float(len(unresolved)), "count"))
        return out


# ------------------------------------------------------------------------ the GPU's list
#: NVML's errors after which a call is not asked again (``telemetry.nvml``'s, and the
#: mismatch pynvml raises for an unversioned call the library lacks)
_UNAVAILABLE = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound", "NVMLError_NoPermission",
                "NVMLLibraryMismatchError")


class GpuProcesses:
    """The processes NVML lists on one GPU: compute, graphics, and MPS clients, each
    through the newest call this pynvml and driver have (``nvmlDevice...Processes``,
    then its ``_v2``); a list the GPU cannot give is dropped after its first failure
    (``unavailable`` says why). ``nvml``: the pynvml module; ``handle``: the GPU's."""

    def __init__(self, nvml, handle):
        self.nvml, self.handle = nvml, handle
        self._unavailable = tuple(getattr(nvml, n) for n in _UNAVAILABLE if hasattr(nvml, n))
        self.calls: Dict[str, List[Callable]] = {}
        for kind in ("Compute", "Graphics", "MPSCompute"):
            base = f"nvmlDeviceGet{kind}RunningProcesses"
            fns = [getattr(nvml, n) for n in (base, base + "_v2") if callable(getattr(nvml, n, None))]
            if fns:
                self.calls[kind] = fns
        self.unavailable: Dict[str, str] = {}

    def read(self) -> List[Tuple[int, Optional[float]]]:
        out: List[Tuple[int, Optional[float]]] = []
        for kind in list(self.calls):
            fns = self.calls[kind]
            procs = None
            while fns:
                try:
                    procs = fns[0](self.handle)
                    break
                except self._unavailable as exc:
                    fns.pop(0)
                    if not fns:
                        self.unavailable[kind] = str(exc) or exc.__class__.__name__
                        del self.calls[kind]
            for p in procs or ():
                mem = getattr(p, "usedGpuMemory", None)
                out.append((int(p.pid), None if mem is None else mem / 2**20))
        return out


# ------------------------------------------------------------------------ the sampler
class ForeignSampler:
    """The Collector's streaming sampler of foreign load: one pass every ``interval_s`` in
    its own thread, and a last one when stopped (the run's tail is covered too).
    ``gpu``: ``(pynvml, handle)`` of the experiment's GPU where NVML answers."""

    source = SOURCE

    def __init__(self, driver: Optional[dict] = None, interval_s: float = INTERVAL_S, gpu=None,
                 me: Optional[int] = None):
        self.acc = Accounting(driver, me)
        self.interval_s = interval_s
        self.gpu = GpuProcesses(*gpu) if gpu is not None else None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._emit = None
        self._lock = threading.Lock()
        self.errors: List[str] = []

    def start(self, emit: Callable[[int, Iterable[Reading]], None]) -> None:
        self._emit = emit
        self._pass()  # the baseline, before anything is measured
        self._thread = threading.Thread(target=self._run, name="trb-foreign", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._pass()

    def _pass(self) -> None:
        with self._lock:
            gpu = None
            if self.gpu is not None:
                try:
                    gpu = self.gpu.read()
                except Exception as exc:  # noqa: BLE001 - a GPU error must not stop the CPU's accounting
                    self._error(f"GPU processes: {exc.__class__.__name__}: {exc}")
            try:
                t, readings = self.acc.update(gpu)
            except Exception as exc:  # noqa: BLE001
                self._error(f"{exc.__class__.__name__}: {exc}")
                return
            if readings and self._emit is not None:
                self._emit(t, readings)

    def _error(self, msg: str) -> None:
        msg = f"{SOURCE}: {msg}"
        if msg not in self.errors:
            self.errors.append(msg)

    def stop(self) -> List[str]:
        if self._thread is not None and not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)
            self._pass()  # the last period, up to now
        if self.gpu is not None:
            for kind, why in self.gpu.unavailable.items():
                self._error(f"the GPU's {kind.lower()} process list is not read ({why})")
        return list(self.errors)

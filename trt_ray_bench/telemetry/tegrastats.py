"""Jetson telemetry from NVIDIA's ``tegrastats``: a parser for the line format of every
generation (TX1/TX2/Nano, Xavier, Orin on JetPack 5/6, Thor), a streaming sampler that
runs ``tegrastats --interval MS`` and stamps each line on the node's monotonic clock, and
``read_log`` for logs written by ``tegrastats --logfile``.

Metrics (long form, source ``tegrastats``; names shared with the host and NVML samplers
where they mean the same thing):

- ``ram_used_mib``, ``ram_total_mib``, ``ram_lfb_count`` (blocks), ``ram_lfb_size_mib``;
  ``swap_used_mib``, ``swap_total_mib``, ``swap_cached_mib``; ``iram_used_kb``,
  ``iram_total_kb``, ``iram_lfb_kb``. tegrastats prints "MB" but counts in MiB: it reads
  /proc/meminfo (kB there are KiB) and divides by 1024, and its largest free block is
  "4MB", the kernel's largest buddy allocation of 1024 pages of 4 KiB
- ``cpu<i>_online`` (1/0: a core tegrastats prints as ``off`` is 0 and gives no other
  row), ``cpu<i>_util_pct``, ``cpu<i>_freq_mhz`` (``CPU [X%,Y%]@Z`` gives every core Z)
- ``gpu_util_pct``, ``gpu_freq_mhz`` (GR3D); with a per-GPC list (``GR3D_FREQ 0%@[305,305]``)
  also ``gpu_freq_mhz:gpc<i>``, and ``gpu_freq_mhz`` is the highest GPC clock (the GPCs of
  one GPU share its clock in practice; the highest is the one a kernel runs at)
- ``emc_util_pct``, ``emc_freq_mhz``; ``mts_fg_pct``, ``mts_bg_pct`` (older boards)
- engines (APE, NVENC, NVDEC, NVJPG, VIC, OFA, NVDLA, PVA, MSENC, ... with any digit;
  ``_FREQ`` dropped, lower case): ``<engine>_on`` (0 when printed ``off``, else 1),
  ``<engine>_util_pct``, ``<engine>_freq_mhz`` (a list: the highest, and
  ``<engine>_freq_mhz:<i>``), PVA's ``<engine>_vpu<i>_util_pct``. Early Orin JetPack 5
  prints its second GPC as ``GR3D2_FREQ``: it stays the engine ``gr3d2``.
- ``temp_c:<sensor>`` (sensor in lower case: ``temp_c:tj``, ``temp_c:gpu``); a sensor
  reading -256 C is off and dropped. L4T R38+ prints ``cpu@43.0C/44.1C``: the second
  value is ``temp_max_c:<sensor>``
- ``power_mw:<RAIL>`` (current) and ``power_avg_mw:<RAIL>`` (average), rail as printed;
  with or without the ``mW`` unit (``W`` is converted). L4T R38+ prints a third value,
  ``power_max_mw:<RAIL>``. (Public R38/R39 lines show it never below the other two: the
  peak since tegrastats started; the NVIDIA pages we could read do not describe it.)
  A rail printed twice in one line (``NC`` on AGX Orin) gets ``#2`` on its second metric.

Anything else is an unknown token: kept as raw text, counted, never an error.

The loads (every metric in ``%``: ``gpu_util_pct``, ``cpu<i>_util_pct``, ``emc_util_pct``,
``<engine>_util_pct``, ``<engine>_vpu<i>_util_pct``, ``mts_*_pct``) are the share of
tegrastats' interval the unit was busy: stored with ``avg_s`` = the interval, a reading
covering the interval that ends when its line was printed (``with_periods``). Clocks,
temperatures, memory and the rails' values are stored as instantaneous (``avg_s`` 0);
``power_avg_mw`` is tegrastats' running average since it started, not an average over
a fixed period, and is stored as 0 too.
"""

from __future__ import annotations

import atexit
import collections
import datetime as _dt
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Counter, Iterable, List, Optional, Sequence, Tuple

from ..errors import UserError
from ._collect import Reading

SOURCE = "tegrastats"

Parsed = Tuple[Optional[_dt.datetime], List[Reading], List[str]]

_NUM = r"\d+(?:\.\d+)?"
_END = r"(?=\s|$)"
_TIMESTAMP = re.compile(r"\s*(\d{2})-(\d{2})-(\d{4})\s+(\d{2}):(\d{2}):(\d{2})(?=\s|$)")
_RAM = re.compile(r"RAM\s+(\d+)/(\d+)([kMG]B)(?:\s*\(lfb\s+(\d+)x(\d+)([kMG]B)\))?" + _END)
_SWAP = re.compile(r"SWAP\s+(\d+)/(\d+)([kMG]B)(?:\s*\(cached\s+(\d+)([kMG]B)\))?" + _END)
_IRAM = re.compile(r"IRAM\s+(\d+)/(\d+)([kMG]B)(?:\s*\(lfb\s+(\d+)([kMG]B)\))?" + _END)
_CPU = re.compile(r"(?i:CPU)\s+\[([^\]]*)\](?:@(\d+))?" + _END)
_MTS = re.compile(r"MTS\s+fg\s+(\d+)%\s+bg\s+(\d+)%" + _END)
_FREQ = r"\[[^\]]*\]|\d+"
#: GR3D, EMC and the engines: ``off``, ``X%``, ``X%@Y``, ``@Y``, ``Y``, ``[X%,X%]@Y``,
#: where Y is MHz or a per-GPC list ``[Y,Y,...]``
_UNIT = re.compile(
    r"([A-Z][A-Z0-9_]*)\s+(?:(?P<off>(?i:off))|(?P<pct>\d+)%(?:@(?P<f1>" + _FREQ + r"))?|@(?P<f2>" + _FREQ
    + r")|\[(?P<vpu>[^\]]*)\]@(?P<f3>\d+)|(?P<f4>\d+))" + _END
)
_RAIL = re.compile(
    r"([A-Z][A-Z0-9_]*)\s+(" + _NUM + r")(mW|W)?/(" + _NUM + r")(mW|W)?(?:/(" + _NUM + r")(mW|W)?)?" + _END
)
_RAIL_ONE = re.compile(r"([A-Z][A-Z0-9_]*)\s+(" + _NUM + r")(mW|W)" + _END)
_TEMP = re.compile(r"([A-Za-z][A-Za-z0-9_]*)@(-?" + _NUM + r")C(?:/(-?" + _NUM + r")C)?" + _END)
_TOKEN = re.compile(r"\S+")
_CORE = re.compile(r"(?:(\d+)%)?(?:@(\d+))?$")

_TO_MIB = {"kB": 1 / 1024, "MB": 1.0, "GB": 1024.0}  # tegrastats' kB, MB, GB are KiB, MiB, GiB
_TO_KB = {"kB": 1.0, "MB": 1024.0, "GB": 1024.0 * 1024}
_EPOCH = _dt.datetime(1970, 1, 1)  # a log's timestamps are naive: seconds counted from here
_OFF_SENSOR = -256.0  # what tegrastats prints for a thermal zone that is powered off


class _Out:
    """Readings of one line; a metric seen twice in a line gets ``#2``, ``#3``."""

    __slots__ = ("readings", "_seen")

    def __init__(self):
        self.readings: List[Reading] = []
        self._seen: Counter[str] = collections.Counter()

    def add(self, metric: str, value: float, unit: str) -> None:
        self._seen[metric] += 1
        n = self._seen[metric]
        self.readings.append((metric if n == 1 else f"{metric}#{n}", float(value), unit))


def _memory(out: _Out, m: re.Match, name: str) -> None:
    unit = m.group(3)
    if name == "iram":
        out.add("iram_used_kb", int(m.group(1)) * _TO_KB[unit], "kB")
        out.add("iram_total_kb", int(m.group(2)) * _TO_KB[unit], "kB")
        if m.group(4):
            out.add("iram_lfb_kb", int(m.group(4)) * _TO_KB[m.group(5)], "kB")
        return
    out.add(f"{name}_used_mib", int(m.group(1)) * _TO_MIB[unit], "MiB")
    out.add(f"{name}_total_mib", int(m.group(2)) * _TO_MIB[unit], "MiB")
    if name == "ram" and m.group(4):
        out.add("ram_lfb_count", int(m.group(4)), "blocks")
        out.add("ram_lfb_size_mib", int(m.group(5)) * _TO_MIB[m.group(6)], "MiB")
    elif name == "swap" and m.group(4):
        out.add("swap_cached_mib", int(m.group(4)) * _TO_MIB[m.group(5)], "MiB")


def _cpus(out: _Out, m: re.Match, unknown: List[str]) -> None:
    shared = m.group(2)  # CPU [X%,Y%]@Z: one frequency for every core
    for i, item in enumerate(m.group(1).split(",")):
        item = item.strip()
        if item.lower() == "off":
            out.add(f"cpu{i}_online", 0, "bool")
            continue
        c = _CORE.match(item)
        if not item or c is None or (c.group(1) is None and c.group(2) is None):
            unknown.append(f"CPU[{i}]={item}")
            continue
        out.add(f"cpu{i}_online", 1, "bool")
        if c.group(1) is not None:
            out.add(f"cpu{i}_util_pct", int(c.group(1)), "%")
        freq = c.group(2) or shared
        if freq is not None:
            out.add(f"cpu{i}_freq_mhz", int(freq), "MHz")


def _freqs(text: str) -> List[Tuple[int, float]]:
    """(index, MHz) of ``[Y,Y,...]`` (a GPC that is ``off`` or unreadable is skipped) or ``Y``."""
    if not text.startswith("["):
        return [(0, float(text))]
    out = []
    for i, v in enumerate(text[1:-1].split(",")):
        v = v.strip()
        if re.fullmatch(_NUM, v):
            out.append((i, float(v)))
    return out


def _unit(out: _Out, m: re.Match) -> None:
    name = m.group(1)
    base = name[:-5] if name.endswith("_FREQ") else name
    prefix = {"GR3D": "gpu", "EMC": "emc"}.get(base, base.lower())
    engine = prefix not in ("gpu", "emc")
    if m.group("off") is not None:
        out.add(f"{prefix}_on", 0, "bool")
        return
    if engine:
        out.add(f"{prefix}_on", 1, "bool")
    if m.group("pct") is not None:
        out.add(f"{prefix}_util_pct", int(m.group("pct")), "%")
    if m.group("vpu") is not None:
        for i, v in enumerate(m.group("vpu").split(",")):
            v = v.strip().rstrip("%")
            if v.isdigit():
                out.add(f"{prefix}_vpu{i}_util_pct", int(v), "%")
    freq = m.group("f1") or m.group("f2") or m.group("f3") or m.group("f4")
    if freq is None:
        return
    values = _freqs(freq)
    if values:
        out.add(f"{prefix}_freq_mhz", max(v for _, v in values), "MHz")
    if freq.startswith("["):
        label = "gpc" if prefix == "gpu" else ""
        for i, v in values:
            out.add(f"{prefix}_freq_mhz:{label}{i}", v, "MHz")


def _mw(value: str, unit: Optional[str]) -> float:
    return float(value) * (1000.0 if unit == "W" else 1.0)


def _rail(out: _Out, m: re.Match) -> None:
    rail = m.group(1)
    out.add(f"power_mw:{rail}", _mw(m.group(2), m.group(3)), "mW")
    out.add(f"power_avg_mw:{rail}", _mw(m.group(4), m.group(5)), "mW")
    if m.group(6) is not None:
        out.add(f"power_max_mw:{rail}", _mw(m.group(6), m.group(7)), "mW")


def _temp(out: _Out, m: re.Match) -> None:
    sensor = m.group(1).lower()
    now = float(m.group(2))
    if now == _OFF_SENSOR:
        return
    out.add(f"temp_c:{sensor}", now, "C")
    if m.group(3) is not None:
        out.add(f"temp_max_c:{sensor}", float(m.group(3)), "C")


def parse_line(line: str) -> Parsed:
    """One tegrastats line -> (its timestamp or None, readings ``(metric, value, unit)``,
    unknown tokens). Never raises on content: what it does not understand is returned."""
    out = _Out()
    unknown: List[str] = []
    stamp = None
    pos = 0
    t = _TIMESTAMP.match(line)
    if t:
        mo, d, y, h, mi, s = (int(g) for g in t.groups())
        try:
            stamp = _dt.datetime(y, mo, d, h, mi, s)
            pos = t.end()
        except ValueError:  # not a date after all: its tokens stay unknown
            stamp = None
    n = len(line)
    while pos < n:
        if line[pos].isspace():
            pos += 1
            continue
        m = _RAM.match(line, pos)
        if m:
            _memory(out, m, "ram")
        elif (m := _SWAP.match(line, pos)):
            _memory(out, m, "swap")
        elif (m := _IRAM.match(line, pos)):
            _memory(out, m, "iram")
        elif (m := _CPU.match(line, pos)):
            _cpus(out, m, unknown)
        elif (m := _MTS.match(line, pos)):
            out.add("mts_fg_pct", int(m.group(1)), "%")
            out.add("mts_bg_pct", int(m.group(2)), "%")
        elif (m := _RAIL.match(line, pos)) or (m := _RAIL_ONE.match(line, pos)):
            if m.re is _RAIL:
                _rail(out, m)
            else:
                out.add(f"power_mw:{m.group(1)}", _mw(m.group(2), m.group(3)), "mW")
        elif (m := _UNIT.match(line, pos)):
            _unit(out, m)
        elif (m := _TEMP.match(line, pos)):
            _temp(out, m)
        else:
            m = _TOKEN.match(line, pos)
            unknown.append(m.group(0))
        pos = m.end()
    return stamp, out.readings, unknown


#: The unit of tegrastats' loads, each the share of its interval a unit was busy
LOAD_UNIT = "%"


def with_periods(readings: Iterable[Reading], interval_s: float) -> List[Reading]:
    """One line's readings ``(metric, value, unit)`` with the period each averages
    (``avg_s``, see ``_collect.Reading``): the loads (unit ``%``) ``interval_s``, ending
    when the line was printed; clocks, temperatures, memory and rails 0 (instantaneous)."""
    return [(r[0], r[1], r[2], float(interval_s) if r[2] == LOAD_UNIT else 0.0) for r in readings]


def log_interval_s(stamps: Sequence[Optional[_dt.datetime]]) -> float:
    """tegrastats' interval (s) measured from a log's timestamps: ``stamps``, one per
    stats line in order (``MM-DD-YYYY HH:MM:SS``, one second resolution; None where a
    line has none). Between successive lines that start a new second, the seconds elapsed
    over the lines printed, summed over the log (exact to a second over its span); spans
    more than three times slower than the median are left out (tegrastats stopped and was
    started again on the same log). NaN without two changes of second."""
    firsts = []  # (position, seconds) of each stamped line whose second differs from the previous stamp
    prev = None
    for k, st in enumerate(stamps):
        if st is None:
            continue
        if prev is not None and st != prev:
            firsts.append((k, (st - _EPOCH).total_seconds()))
        prev = st
    if len(firsts) < 2:
        return float("nan")
    spans = [(b[1] - a[1], b[0] - a[0]) for a, b in zip(firsts, firsts[1:]) if b[1] > a[1]]  # a clock set back: skipped
    if not spans:
        return float("nan")
    each = sorted(s / k for s, k in spans)
    median = each[len(each) // 2]
    keep = [(s, k) for s, k in spans if s / k <= 3 * median]
    return round(sum(s for s, _ in keep) / sum(k for _, k in keep), 3)


def wanted(requested: Optional[bool], platform_kind: str) -> bool:
    """Whether a node runs tegrastats: ``telemetry.tegrastats`` true or false as asked,
    None (the default) on a Jetson only."""
    return bool(requested) if requested is not None else platform_kind == "jetson"


def read_log(path, interval_ms: Optional[float] = None) -> "pandas.DataFrame":  # noqa: F821 - pandas imported lazily
    """A ``tegrastats --logfile`` log as a long-form table: ``line`` (index of the line in
    the file), ``timestamp`` (the line's own ``MM-DD-YYYY HH:MM:SS``, the board's local
    time; NaT on boards that print none), ``source``, ``metric``, ``value``, ``unit`` and
    ``avg_s`` (the period a reading averages: the loads tegrastats' interval, the rest 0;
    see ``with_periods``). The interval is ``interval_ms`` (the ``--interval`` the log was
    written with) where given, else measured from the lines' timestamps
    (``log_interval_s``); NaN for the loads where neither tells it (boards that print no
    timestamp). ``attrs["interval_s"]`` is the interval used, ``attrs["unknown_tokens"]``
    counts what was not understood, ``attrs["lines"]`` the lines. An unreadable file is a
    UserError naming it."""
    import numpy as np
    import pandas as pd

    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise UserError(str(path), f"cannot read it ({exc.strerror or exc})") from None
    cols = {"line": [], "timestamp": [], "source": [], "metric": [], "value": [], "unit": []}
    unknown: Counter[str] = collections.Counter()
    stamps: List[Optional[_dt.datetime]] = []  # one per line with readings
    lines = 0
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        lines += 1
        stamp, readings, bad = parse_line(line)
        unknown.update(bad)
        if readings:
            stamps.append(stamp)
        for metric, value, unit in readings:
            cols["line"].append(i)
            cols["timestamp"].append(stamp)
            cols["source"].append(SOURCE)
            cols["metric"].append(metric)
            cols["value"].append(value)
            cols["unit"].append(unit)
    interval_s = float(interval_ms) / 1000 if interval_ms is not None else log_interval_s(stamps)
    unit = pd.Series(cols["unit"], dtype="object")
    df = pd.DataFrame({
        "line": pd.Series(cols["line"], dtype="int64"),
        "timestamp": pd.to_datetime(pd.Series(cols["timestamp"], dtype="object")),
        "source": pd.Series(cols["source"], dtype="object"),
        "metric": pd.Series(cols["metric"], dtype="object"),
        "value": pd.Series(cols["value"], dtype="float64"),
        "unit": unit,
        "avg_s": pd.Series(np.where(unit.to_numpy() == LOAD_UNIT, interval_s, 0.0), dtype="float64"),
    })
    df.attrs["unknown_tokens"] = dict(unknown)
    df.attrs["lines"] = lines
    df.attrs["interval_s"] = interval_s
    return df


# --- the sampler ---------------------------------------------------------------------

#: Samplers with a tegrastats running, stopped at interpreter exit (a Ray worker that
#: exits gracefully); a worker killed outright takes it down through PR_SET_PDEATHSIG.
_RUNNING: "weakref.WeakSet[TegrastatsSampler]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for s in list(_RUNNING):
        s.stop()


def _die_with_parent() -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the thread that started it
    ends (also when its process is killed: no tegrastats outlives a killed Monitor)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` (argv, no shell) and pushes each line's readings,
    stamped with ``perf_counter_ns`` when the line arrives (the clock of the timing loop),
    through ``emit`` from its own reader thread, the loads with ``avg_s`` = the interval
    (``with_periods``). A streaming sampler of the Collector.

    Nothing here fails a run: tegrastats not found, exiting early (its exit code and the
    gap it leaves), not stopping on SIGTERM (killed), unknown tokens and lines that arrive
    in bursts are returned by ``stop()`` as one-line warnings."""

    source = SOURCE

    def __init__(self, interval_ms: int = 100, executable: str = "tegrastats", stop_timeout_s: float = 2.0):
        self.interval_ms = int(interval_ms)
        self.executable = executable
        self.stop_timeout_s = stop_timeout_s
        self.pid: Optional[int] = None
        self.lines = 0  # lines read
        self.emitted = 0  # lines with readings, pushed to ``emit``
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None
        self._spawned = threading.Event()
        self._lock = threading.Lock()
        self._warnings: List[str] = []
        self._unknown: Counter[str] = collections.Counter()
        self._unknown_lines = 0
        self._messages: List[str] = []  # lines with no readings: what tegrastats said
        self._t_start = self._t_last = self._t_exit = None
        self._returncode: Optional[int] = None
        self._bursty = 0
        self._stopped = False

    @property
    def argv(self) -> List[str]:
        return [self.executable, "--interval", str(self.interval_ms)]

    def start(self, emit: Callable[[int, Iterable[Reading]], None]) -> None:
        exe = shutil.which(self.executable)
        if exe is None:
            self._warnings.append(f"{SOURCE}: not found on PATH ({self.executable}); the run has no "
                                  "tegrastats telemetry")
            return
        self._t_start = time.perf_counter_ns()
        # Started from the reader thread: PR_SET_PDEATHSIG follows the thread that forks,
        # and this one lives exactly as long as tegrastats' output.
        self._thread = threading.Thread(target=self._read, args=([exe] + self.argv[1:], emit),
                                        name="trb-tegrastats", daemon=True)
        self._thread.start()
        self._spawned.wait(10)
        _RUNNING.add(self)

    def _read(self, argv: List[str], emit) -> None:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, preexec_fn=_die_with_parent())
        except OSError as exc:
            self._warnings.append(f"{SOURCE}: cannot start {argv[0]} ({exc.strerror or exc}); the run has "
                                  "no tegrastats telemetry")
            self._spawned.set()
            return
        self._proc, self.pid = proc, proc.pid
        self._spawned.set()
        gap_ns = self.interval_ms * 1_000_000 // 4
        interval_s = self.interval_ms / 1000  # a load averages the interval its line closes
        try:
            for raw in iter(proc.stdout.readline, b""):
                t = time.perf_counter_ns()
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                self.lines += 1
                try:
                    _, readings, unknown = parse_line(line)
                except Exception as exc:  # noqa: BLE001 - a parser bug must not end the stream
                    readings, unknown = [], [f"<{exc.__class__.__name__} on {line[:40]!r}>"]
                if not readings:  # not a stats line: what tegrastats says (an error, a notice)
                    if len(self._messages) < 3:
                        self._messages.append(line[:200])
                    continue
                if unknown:
                    self._unknown.update(unknown)
                    self._unknown_lines += 1
                if self._t_last is not None and t - self._t_last < gap_ns:
                    self._bursty += 1
                self._t_last = t
                self.emitted += 1
                emit(t, with_periods(readings, interval_s))
        finally:
            self._returncode = proc.wait()
            self._t_exit = time.perf_counter_ns()
            proc.stdout.close()

    def stop(self) -> List[str]:
        """Stop tegrastats (SIGTERM, then SIGKILL after ``stop_timeout_s``), wait for it and
        the reader; the warnings of the whole run, once."""
        with self._lock:
            if self._stopped:
                return []
            self._stopped = True
        t_stop = time.perf_counter_ns()
        proc = self._proc
        early = proc is not None and proc.poll() is not None  # it ended before we asked
        if proc is not None and not early:
            proc.terminate()
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._warnings.append(f"{SOURCE}: did not stop on SIGTERM within {self.stop_timeout_s:g} s; killed")
        if self._thread is not None:
            self._thread.join(5)
        _RUNNING.discard(self)
        if early:
            ran = ((self._t_exit or t_stop) - self._t_start) / 1e9
            since = self._t_last if self._t_last is not None else self._t_start
            said = f"; it printed {self._messages[-1]!r}" if self._messages else ""
            self._warnings.append(
                f"{SOURCE}: exited early with code {self._returncode} after {ran:.1f} s ({self.emitted} lines); "
                f"no tegrastats telemetry for the last {(t_stop - since) / 1e9:.1f} s of the run{said}"
            )
        elif self._messages and not self._t_last:
            self._warnings.append(f"{SOURCE}: printed no readable line (first: {self._messages[0]!r})")
        if self._unknown:
            example, _ = self._unknown.most_common(1)[0]
            total = sum(self._unknown.values())
            self._warnings.append(
                f"{SOURCE}: {total} unknown tokens in {self._unknown_lines} of {self.emitted} lines, kept out of "
                f"the telemetry (e.g. {example!r}); this tegrastats may print a format newer than the parser"
            )
        if self.emitted >= 8 and self._bursty > self.emitted // 4:
            self._warnings.append(
                f"{SOURCE}: {self._bursty} of {self.emitted} lines arrived within a quarter interval of the previous "
                "one: its output is buffered, so arrival stamps are not sample instants"
            )
        return list(self._warnings)

"""tegrastats: the parser on real lines of every Jetson generation, the streaming sampler,
``read_log`` and ``trb tegrastats``, and one run through the real Ray path.

tegrastats exists only on Jetson boards. Here a stand-in (``standins/tegrastats.py``)
takes its place, first on PATH: it takes ``--interval MS``, replays recorded lines at that
interval, records its argv and pid, and ends on SIGTERM like the real one; environment
variables make it exit early or ignore SIGTERM."""

import io
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from trt_ray_bench.telemetry import Collector, HostSampler, TegrastatsSampler
from trt_ray_bench.telemetry.tegrastats import log_interval_s, parse_line, read_log, wanted, with_periods

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def _fixture_lines():
    out = {}
    for raw in (HERE / "data" / "tegrastats_lines.txt").read_text().splitlines():
        m = re.match(r"^([a-z0-9_.]+): (.*)$", raw)
        if m:
            out[m.group(1)] = m.group(2)
    return out


LINES = _fixture_lines()


def _metrics(key):
    stamp, readings, unknown = parse_line(LINES[key])
    values = {m: v for m, v, _ in readings}
    assert len(values) == len(readings), "a metric twice in one line"
    return stamp, values, {m: u for m, _, u in readings}, unknown


def _cores(values):
    return sorted(int(m[3:-7]) for m in values if re.fullmatch(r"cpu\d+_online", m))


def _alive(pid):
    """A process that exited counts as gone even while a zombie (PID 1 of a container may
    not reap the children it adopts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait(cond, timeout=5.0):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# --- the parser ---------------------------------------------------------------------


def test_orin_agx_jetpack6_line():
    stamp, v, units, unknown = _metrics("orin_agx_r36.4.4")
    assert unknown == []
    assert stamp.isoformat() == "2026-05-09T18:42:06"
    assert v["power_mw:VDD_GPU_SOC"] == 2412 and v["power_avg_mw:VDD_GPU_SOC"] == 2412
    assert v["power_mw:VDD_CPU_CV"] == 1607 and v["power_mw:VIN_SYS_5V0"] == 4707
    assert units["power_mw:VIN_SYS_5V0"] == "mW"
    assert v["gpu_util_pct"] == 0 and v["gpu_freq_mhz"] == 0
    assert v["gpu_freq_mhz:gpc0"] == 0 and v["gpu_freq_mhz:gpc1"] == 0
    assert v["temp_c:tj"] == 52.562 and v["temp_c:cpu"] == 52.562 and v["temp_c:soc1"] == 49.656
    assert _cores(v) == list(range(12)) and all(v[f"cpu{i}_online"] == 1 for i in range(12))
    assert (v["cpu0_util_pct"], v["cpu0_freq_mhz"], v["cpu11_util_pct"], v["cpu11_freq_mhz"]) == (14, 2188, 10, 1036)
    assert (v["emc_util_pct"], v["emc_freq_mhz"]) == (3, 2133)
    assert (v["nvenc_on"], v["nvenc_util_pct"], v["nvenc_freq_mhz"]) == (1, 79, 166)
    assert (v["vic_util_pct"], v["vic_freq_mhz"]) == (36, 115)
    for off in ("nvdec", "nvjpg", "nvjpg1", "ofa", "nvdla0", "nvdla1", "pva0"):
        assert v[f"{off}_on"] == 0 and f"{off}_freq_mhz" not in v
    assert v["ape_freq_mhz"] == 174
    assert (v["ram_used_mib"], v["ram_total_mib"], v["ram_lfb_count"], v["ram_lfb_size_mib"]) == (18207, 62841, 466, 4)
    assert (v["swap_used_mib"], v["swap_total_mib"], v["swap_cached_mib"]) == (86, 31420, 0)
    # the next second: current and average apart
    _, v2, _, _ = _metrics("orin_agx_r36.4.4_b")
    assert (v2["power_mw:VIN_SYS_5V0"], v2["power_avg_mw:VIN_SYS_5V0"]) == (4607, 4657)


def test_nano_tx2_xavier_lines():
    stamp, nano, _, unknown = _metrics("nano_jp4.6.1")
    assert stamp is None and unknown == []
    assert (nano["power_mw:POM_5V_IN"], nano["power_avg_mw:POM_5V_IN"]) == (1750, 1628)  # no unit: mW
    assert (nano["gpu_util_pct"], nano["gpu_freq_mhz"]) == (0, 76) and "gpu_freq_mhz:gpc0" not in nano
    assert (nano["iram_used_kb"], nano["iram_total_kb"], nano["iram_lfb_kb"]) == (0, 252, 252)
    assert (nano["ram_lfb_count"], nano["ram_lfb_size_mib"]) == (2, 2)
    assert _cores(nano) == [0, 1, 2, 3] and nano["temp_c:gpu"] == 40 and nano["temp_c:pmic"] == 50

    _, tx2, _, _ = _metrics("tx2")
    assert _cores(tx2) == list(range(6))
    assert tx2["cpu0_online"] == 1 and tx2["cpu0_freq_mhz"] == 345
    for i in range(1, 6):  # 'off': the core is down, and says so, with no other row
        assert tx2[f"cpu{i}_online"] == 0 and f"cpu{i}_util_pct" not in tx2 and f"cpu{i}_freq_mhz" not in tx2
    assert (tx2["power_mw:VDD_IN"], tx2["power_avg_mw:VDD_IN"]) == (2003, 2658)
    assert tx2["temp_c:bcpu"] == 35 and tx2["temp_c:ao"] == 35.5

    stamp, nx, _, _ = _metrics("xavier_nx_jp5.1.2")
    assert stamp.isoformat() == "2024-07-09T13:31:31"
    assert nx["gpu_freq_mhz"] == 114 and nx["gpu_freq_mhz:gpc0"] == 114  # GR3D_FREQ 0%@[114]
    assert nx["vic_freq_mhz"] == 115 and nx["power_avg_mw:VDD_CPU_GPU_CV"] == 670

    _, agx, _, _ = _metrics("agx_xavier_jp4")
    assert (agx["mts_fg_pct"], agx["mts_bg_pct"]) == (0, 0)
    assert agx["power_mw:GPU"] == 0 and agx["power_mw:SYS5V"] == 1482 and agx["temp_c:gpu"] == 37.5
    assert [agx[f"cpu{i}_online"] for i in range(8)] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_thor_lines():
    stamp, v, _, unknown = _metrics("thor_r38.4")
    assert unknown == [] and stamp.isoformat() == "2026-05-17T10:00:32"
    assert _cores(v) == list(range(14))
    # GR3D_FREQ @[0,0,0]: three GPC clocks and no utilization (none is printed: none invented)
    assert "gpu_util_pct" not in v and [v[f"gpu_freq_mhz:gpc{i}"] for i in range(3)] == [0, 0, 0]
    assert v["nvenc0_freq_mhz"] == 0 and v["nvdec1_on"] == 1 and v["ofa_freq_mhz"] == 0 and v["vic_on"] == 0
    assert v["power_mw:VDD_CPU_SOC_MSS"] == 4165 and v["power_mw:VDD_GPU"] == 0
    assert v["temp_c:soc012"] == 33.781

    _, a, _, _ = _metrics("thor_r39.2_a")
    _, b, _, _ = _metrics("thor_r39.2_b")
    assert a["gpu_freq_mhz"] == 314 and (a["vic_util_pct"], a["vic_freq_mhz"]) == (59, 423)
    # R39: "now/max" temperatures, "current/average/max" rails
    assert (b["temp_c:cpu"], b["temp_max_c:cpu"]) == (34.312, 34.843)
    assert (b["power_mw:VDD_CPU_SOC_MSS"], b["power_avg_mw:VDD_CPU_SOC_MSS"], b["power_max_mw:VDD_CPU_SOC_MSS"]) \
        == (7953, 8332, 8710)

    _, idle, _, _ = _metrics("thor_r39_idle")
    assert (idle["cpu0_freq_mhz"], idle["cpu1_util_pct"], idle["cpu1_freq_mhz"]) == (2601, 5, 2601)  # [X%,Y%]@Z
    assert idle["cpu2_online"] == 0
    assert idle["emc_freq_mhz"] == 4266 and "emc_util_pct" not in idle  # EMC_FREQ @4266
    assert idle["power_max_mw:VIN"] == 28906


def test_older_and_odd_formats():
    _, tx1, _, _ = _metrics("tx1_l4t28.1")  # cpu [X%,...]@Z, EMC and GR3D without _FREQ
    assert [tx1[f"cpu{i}_util_pct"] for i in range(4)] == [17, 13, 29, 5]
    assert tx1["cpu3_freq_mhz"] == 408 and (tx1["emc_util_pct"], tx1["emc_freq_mhz"]) == (1, 408)
    assert (tx1["gpu_util_pct"], tx1["gpu_freq_mhz"]) == (3, 76)

    _, jtop, _, _ = _metrics("jtop_emulator")
    assert jtop["ram_lfb_size_mib"] == 0.5  # lfb 1x512kB
    assert jtop["temp_c:bcpu"] == -45 and jtop["nvenc_freq_mhz"] == 716 and jtop["gpu_util_pct"] == 42

    stamp, orin5, _, _ = _metrics("orin_agx_jp5.1")
    assert not any(m.startswith(("temp_c:cv", "temp_c:gpu")) for m in orin5)  # -256C: sensor off, dropped
    assert orin5["temp_c:tj"] == 42.593 and orin5["temp_c:tboard"] == 32  # names in lower case
    assert orin5["power_mw:NC"] == 0 and orin5["power_mw:NC#2"] == 0  # NC printed twice
    assert orin5["power_mw:VDDQ_VDD2_1V8AO"] == 301
    assert orin5["gr3d2_freq_mhz"] == 0  # the second GPC of early Orin JetPack 5, as printed

    _, dla, _, _ = _metrics("orin_agx_jp6_dla")
    assert (dla["nvdla0_on"], dla["nvdla0_freq_mhz"]) == (1, 1600) and "nvdla0_util_pct" not in dla
    assert dla["gpu_freq_mhz"] == 407 and dla["temp_c:cv0"] == 73.625

    _, nonroot, _, _ = _metrics("orin_agx_nonroot")
    assert nonroot["gpu_util_pct"] == 0 and "gpu_freq_mhz" not in nonroot and "emc_util_pct" not in nonroot

    _, spaced, _, _ = _metrics("orin_agx_r36_spaces")
    assert spaced["nvenc_on"] == 0 and spaced["ape_freq_mhz"] == 174 and spaced["gpu_freq_mhz"] == 305


def test_unknown_tokens_are_kept_not_fatal():
    _, v, _, unknown = _metrics("thor_r39_loaded")
    assert unknown == ["FUTURE_TOKEN", "value"]
    assert (v["power_mw:VIN"], v["power_avg_mw:VIN"]) == (124486, 36487) and v["gpu_util_pct"] == 87
    _, frag, _, unknown = _metrics("agx_xavier_jp5_fragment")  # published without "CPU"
    assert unknown == ["[0%@1190,1%@1190,0%@1190,0%@1189,0%@1190,0%@1191,0%@1190,0%@1190]"]
    assert frag["power_mw:CV"] == 0 and frag["power_mw:SYS5V"] == 2768 and frag["gpu_freq_mhz"] == 114

    assert parse_line("") == (None, [], [])
    stamp, readings, unknown = parse_line("13-45-2024 99:00:00 hello RAM 1/2MB CPU [bad,off]")
    assert stamp is None and unknown == ["13-45-2024", "99:00:00", "hello", "CPU[0]=bad"]
    assert dict((m, v) for m, v, _ in readings) == {"ram_used_mib": 1, "ram_total_mib": 2, "cpu1_online": 0}
    _, readings, unknown = parse_line("GR3D_FREQ @[300,off,600] VDD_GPU 1.5W/2W VDD_IN 598mW/598 VDD_GPU_SOC 10340mW")
    v = {m: x for m, x, _ in readings}
    assert unknown == []
    assert (v["gpu_freq_mhz"], v["gpu_freq_mhz:gpc0"], v["gpu_freq_mhz:gpc2"]) == (600, 300, 600)
    assert "gpu_freq_mhz:gpc1" not in v
    assert (v["power_mw:VDD_GPU"], v["power_avg_mw:VDD_GPU"]) == (1500, 2000)
    assert v["power_avg_mw:VDD_IN"] == 598 and v["power_mw:VDD_GPU_SOC"] == 10340


_NAME = re.compile(r"""(
    (ram|swap)_(used|total)_mib | ram_lfb_count | ram_lfb_size_mib | swap_cached_mib | iram_(used|total|lfb)_kb
  | cpu\d+_(online|util_pct|freq_mhz) | mts_(fg|bg)_pct
  | gpu_(util_pct|freq_mhz) | gpu_freq_mhz:gpc\d+ | emc_(util_pct|freq_mhz)
  | [a-z][a-z0-9]*_(on|util_pct|freq_mhz) | [a-z][a-z0-9]*_freq_mhz:\d+ | [a-z][a-z0-9]*_vpu\d+_util_pct
  | temp_c:[a-z][a-z0-9_]* | temp_max_c:[a-z][a-z0-9_]*
  | power_(avg_|max_)?mw:[A-Z][A-Z0-9_]*(\#\d+)?
)$""", re.X)
_UNITS = {"_mib": "MiB", "_kb": "kB", "_pct": "%", "_mhz": "MHz", "_online": "bool", "_on": "bool",
          "_count": "blocks", "temp": "C", "power": "mW"}


@pytest.mark.parametrize("key", sorted(LINES))
def test_every_recorded_line_gives_documented_metrics(key):
    stamp, readings, unknown = parse_line(LINES[key])
    assert len(readings) >= 20
    assert unknown == [] or key in ("thor_r39_loaded", "agx_xavier_jp5_fragment")
    for metric, value, unit in readings:
        assert _NAME.match(metric), metric
        assert math.isfinite(value)
        family = metric.split(":")[0].split("#")[0]
        want = next(u for k, u in _UNITS.items() if family.endswith(k) or family.startswith(k))
        assert unit == want, (metric, unit)
    names = {m for m, _, _ in readings}
    assert any(m.startswith(("cpu", "gpu_")) for m in names)


@pytest.mark.parametrize("key", ["orin_agx_r36.4.4", "agx_xavier_jp4", "thor_r39_loaded", "tx1_l4t28.1"])
def test_loads_average_the_interval_the_rest_are_instantaneous(key):
    """tegrastats prints each load as the share of its interval the unit was busy: those
    readings carry the interval as ``avg_s``; clocks, temperatures, memory and rails
    (current, average and peak) are 0."""
    _, readings, _ = parse_line(LINES[key])
    got = {m: (u, a) for m, _, u, a in with_periods(readings, 0.1)}
    assert len(got) == len(readings)
    loads = {m for m, (u, _) in got.items() if u == "%"}
    assert "gpu_util_pct" in loads and "cpu0_util_pct" in loads
    assert all(got[m][1] == 0.1 for m in loads)
    assert all(a == 0.0 for m, (u, a) in got.items() if m not in loads)
    assert all(m.endswith("_pct") for m in loads)
    assert {"gpu_freq_mhz", "ram_used_mib"} <= set(got) - loads
    if key == "orin_agx_r36.4.4":  # the engines' loads and the EMC's too
        assert {"emc_util_pct", "nvenc_util_pct", "vic_util_pct"} <= loads
        assert got["power_mw:VDD_GPU_SOC"] == ("mW", 0.0) and got["power_avg_mw:VDD_GPU_SOC"] == ("mW", 0.0)
        assert got["temp_c:tj"] == ("C", 0.0) and got["ram_lfb_size_mib"] == ("MiB", 0.0)
    if key == "agx_xavier_jp4":  # MTS foreground / background: loads
        assert {"mts_fg_pct", "mts_bg_pct"} <= loads


def test_wanted_by_spec_and_platform():
    assert wanted(None, "jetson") and not wanted(None, "cpu") and not wanted(None, "dgpu")
    assert wanted(True, "cpu") and not wanted(False, "jetson")


# --- the sampler, with the stand-in -------------------------------------------------


class StandIn:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.lines = bin_dir / "tegrastats.lines"
        self.calls = bin_dir / "tegrastats.calls"

    def replay(self, *keys):
        self.lines.write_text("".join(LINES[k] + "\n" for k in keys))

    def recorded(self):
        return [json.loads(x) for x in self.calls.read_text().splitlines()] if self.calls.exists() else []


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in ``tegrastats`` first on PATH (also for the Ray actors, which get the
    driver's PATH when tegrastats is asked for)."""
    bin_dir = tmp_path / "standin-bin"
    bin_dir.mkdir()
    exe = bin_dir / "tegrastats"
    exe.write_text(f"#!{sys.executable}\n" + (HERE / "standins" / "tegrastats.py").read_text())
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("TRB_STANDIN_LINES", "TRB_STANDIN_RECORD", "TRB_STANDIN_EXIT_AFTER", "TRB_STANDIN_IGNORE_TERM"):
        monkeypatch.delenv(var, raising=False)
    s = StandIn(bin_dir)
    s.replay("orin_agx_r36.4.4", "orin_agx_r36.4.4_b")
    return s


def _collect(sampler, seconds):
    rows = []
    t0 = time.perf_counter_ns()
    sampler.start(lambda t, readings: rows.append((t, list(readings))))
    time.sleep(seconds)
    warnings = sampler.stop()
    return t0, time.perf_counter_ns(), rows, warnings


def test_sampler_stamps_each_line_on_the_loop_clock_and_leaves_no_process(standin):
    s = TegrastatsSampler(interval_ms=50)
    t0, t1, rows, warnings = _collect(s, 0.6)
    assert warnings == []
    assert standin.recorded() == [{"argv": ["--interval", "50"], "pid": s.pid}]
    assert 7 <= len(rows) <= 13  # ~12 lines in 0.6 s at 50 ms, on a loaded CI box
    stamps = [t for t, _ in rows]
    assert t0 <= stamps[0] and stamps[-1] <= t1 and stamps == sorted(stamps)
    gaps_ms = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:])]
    assert 35 <= statistics.median(gaps_ms) <= 70
    first = dict((m, v) for m, v, _, _ in rows[0][1])
    assert first["power_mw:VDD_GPU_SOC"] == 2412 and first["temp_c:tj"] == 52.562
    assert not _alive(s.pid)  # stopped, waited for: no orphan
    assert s.stop() == []  # a second stop is harmless and says nothing again


def test_collector_runs_polled_and_streaming_samplers_together(standin):
    c = Collector([HostSampler(), TegrastatsSampler(interval_ms=50)], interval_s=0.05).start()
    time.sleep(0.5)
    rows = c.stop()
    assert c.errors == []
    frame = pd.DataFrame(rows)
    assert set(frame.source) == {"host", "tegrastats"}
    teg = frame[frame.source == "tegrastats"]
    assert {"gpu_util_pct", "power_mw:VDD_GPU_SOC", "cpu11_freq_mhz"} <= set(teg.metric)
    assert 5 <= teg.t_ns.nunique() <= 12
    # the rows of one line stay together: every stamp carries the whole line
    assert teg.groupby("t_ns").size().eq(75).all()
    # the loads average the 50 ms interval each line closes; clocks, rails, memory are instantaneous
    avg = teg.groupby("metric")["avg_s"].agg(set)
    assert all(avg[m] == {0.05} for m in ("gpu_util_pct", "cpu0_util_pct", "emc_util_pct", "nvenc_util_pct"))
    assert all(avg[m] == {0.0} for m in ("gpu_freq_mhz", "power_mw:VDD_GPU_SOC", "temp_c:tj", "ram_used_mib"))


def test_absent_tegrastats_is_a_warning_and_the_rest_goes_on(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    c = Collector([HostSampler(), TegrastatsSampler(interval_ms=50)], interval_s=0.02).start()
    time.sleep(0.1)
    rows = c.stop()
    assert len(c.errors) == 1 and c.errors[0].startswith("tegrastats: not found on PATH")
    assert set(rows["source"]) == {"host"}


def test_tegrastats_exiting_early_records_its_code_and_the_gap(standin, monkeypatch):
    monkeypatch.setenv("TRB_STANDIN_EXIT_AFTER", "3")
    s = TegrastatsSampler(interval_ms=50)
    _, _, rows, warnings = _collect(s, 0.7)
    assert len(rows) == 3
    assert len(warnings) == 1, warnings
    w = warnings[0]
    assert w.startswith("tegrastats: exited early with code 3 after") and "(3 lines)" in w
    assert "stand-in told to exit" in w  # what it printed on its way out
    gap = float(re.search(r"for the last ([\d.]+) s", w).group(1))
    assert 0.4 <= gap <= 1.5  # 0.7 s run, last line at ~0.15 s
    assert not _alive(s.pid)


def test_tegrastats_ignoring_sigterm_is_killed(standin, monkeypatch):
    monkeypatch.setenv("TRB_STANDIN_IGNORE_TERM", "1")
    s = TegrastatsSampler(interval_ms=50, stop_timeout_s=0.3)
    rows = []
    s.start(lambda t, r: rows.append(t))
    assert _wait(lambda: rows)  # its SIGTERM handler is in place once it printed
    t = time.monotonic()
    warnings = s.stop()
    assert time.monotonic() - t < 2
    assert warnings == ["tegrastats: did not stop on SIGTERM within 0.3 s; killed"]
    assert not _alive(s.pid)


def test_unknown_tokens_are_counted_in_one_warning(standin):
    standin.replay("thor_r39_loaded")
    s = TegrastatsSampler(interval_ms=50)
    _, _, rows, warnings = _collect(s, 0.4)
    assert rows and all(any(m == "power_mw:VIN" for m, *_ in r) for _, r in rows)
    assert len(warnings) == 1
    n = len(rows)
    assert warnings[0].startswith(f"tegrastats: {2 * n} unknown tokens in {n} of {n} lines")
    assert "'FUTURE_TOKEN'" in warnings[0] or "'value'" in warnings[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_no_orphan_when_the_process_running_the_sampler_is_killed(standin):
    """What ``ray.kill(monitor)`` does to the Monitor's process: SIGKILL, no exit hooks."""
    script = textwrap.dedent("""
        import time
        from trt_ray_bench.telemetry import TegrastatsSampler
        s = TegrastatsSampler(interval_ms=50)
        s.start(lambda t, r: None)
        print(s.pid, flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        pid = int(p.stdout.readline())
        assert _alive(pid)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        assert _wait(lambda: not _alive(pid), timeout=5), "tegrastats outlived the process that ran it"
    finally:
        if p.poll() is None:
            p.kill()


# --- existing logs: read_log and trb tegrastats -------------------------------------


def _log(tmp_path):
    path = tmp_path / "tegrastats.log"
    path.write_text("\n".join([LINES["orin_agx_r36.4.4"], LINES["orin_agx_r36.4.4_b"], "",
                               LINES["nano_jp4.6.1"] + " hello"]) + "\n")
    return path


def test_read_log_is_the_long_form_table(tmp_path):
    df = read_log(_log(tmp_path))
    assert list(df.columns) == ["line", "timestamp", "source", "metric", "value", "unit", "avg_s"]
    assert sorted(df.line.unique()) == [0, 1, 3]
    stamps = df.groupby("line").timestamp.first()
    assert str(stamps[0]) == "2026-05-09 18:42:06" and str(stamps[1]) == "2026-05-09 18:42:07"
    assert pd.isna(stamps[3])  # the Nano prints no timestamp: the line index is the order
    v = df.set_index(["line", "metric"]).value
    assert v[(1, "power_avg_mw:VIN_SYS_5V0")] == 4657 and v[(3, "power_mw:POM_5V_IN")] == 1750
    assert set(df.source) == {"tegrastats"}
    assert df.attrs["unknown_tokens"] == {"hello": 1} and df.attrs["lines"] == 3


def _timed_log(tmp_path, key, seconds, per_second):
    """A log of one real recorded line (it starts with its timestamp), stamped as
    ``tegrastats --interval`` 1000 / ``per_second`` ms would: ``per_second`` lines in each
    of ``seconds`` seconds."""
    line = LINES[key]
    t0 = pd.Timestamp(pd.to_datetime(line[:19], format="%m-%d-%Y %H:%M:%S"))
    stamps = [t0 + pd.Timedelta(seconds=k // per_second) for k in range(seconds * per_second)]
    path = tmp_path / f"{key}.log"
    path.write_text("".join(t.strftime("%m-%d-%Y %H:%M:%S") + line[19:] + "\n" for t in stamps))
    return path


def test_read_log_measures_the_interval_or_is_told_it(tmp_path):
    # the AGX Orin line recorded with "tegrastats --interval 100": ten lines a second for 5 s
    df = read_log(_timed_log(tmp_path, "orin_agx_jp6_dla", 5, 10))
    assert df.attrs["interval_s"] == 0.1
    avg = df.groupby("metric")["avg_s"].agg(set)
    assert avg["gpu_util_pct"] == {0.1} and avg["cpu3_util_pct"] == {0.1} and avg["emc_util_pct"] == {0.1}
    assert avg["gpu_freq_mhz"] == {0.0} and avg["power_mw:VDD_GPU_SOC"] == {0.0} and avg["ram_used_mib"] == {0.0}
    # one line every 2 s, with an hour's pause in the middle: the pause is not an interval
    df = read_log(_two_second_log(tmp_path))
    assert df.attrs["interval_s"] == 2.0
    # told: the --interval the log was written with
    df = read_log(_timed_log(tmp_path, "orin_agx_jp6_dla", 5, 10), interval_ms=250)
    assert df.attrs["interval_s"] == 0.25 and set(df.loc[df.metric == "gpu_util_pct", "avg_s"]) == {0.25}
    # boards that print no timestamp: the loads' period is unknown (NaN) unless told
    nano = tmp_path / "nano.log"
    nano.write_text((LINES["nano_jp4.6.1"] + "\n") * 20)
    df = read_log(nano)
    assert df.loc[df.unit == "%", "avg_s"].isna().all() and (df.loc[df.unit != "%", "avg_s"] == 0).all()
    assert set(read_log(nano, interval_ms=500).loc[lambda d: d.unit == "%", "avg_s"]) == {0.5}


def _two_second_log(tmp_path):
    """The AGX Orin R36.4.4 line every 2 s for 20 s, then, an hour later, again."""
    line = LINES["orin_agx_r36.4.4"]
    t0 = pd.Timestamp("2026-05-09 18:42:06")
    stamps = [t0 + pd.Timedelta(seconds=2 * k) for k in range(10)]
    stamps += [t0 + pd.Timedelta(seconds=3600 + 2 * k) for k in range(10)]
    path = tmp_path / "two_seconds.log"
    path.write_text("".join(t.strftime("%m-%d-%Y %H:%M:%S") + line[19:] + "\n" for t in stamps))
    return path


def test_log_interval_from_second_resolution_stamps():
    t0 = pd.Timestamp("2026-05-09 18:42:06").to_pydatetime()
    at = [t0 + pd.Timedelta(milliseconds=300 * k).to_pytimedelta() for k in range(100)]  # --interval 300, 30 s
    stamps = [t.replace(microsecond=0) for t in at]
    assert log_interval_s(stamps) == pytest.approx(0.3, abs=0.01)
    assert math.isnan(log_interval_s(stamps[:3]))  # within one second: not measurable
    assert math.isnan(log_interval_s([None] * 10))


def test_trb_tegrastats_prints_csv_and_writes_parquet(trb, tmp_path):
    log = _log(tmp_path)
    code, out, err = trb("tegrastats", log)
    assert code == 0
    assert "1 unknown tokens" in err and "'hello'" in err
    csv = pd.read_csv(io.StringIO(out))
    assert list(csv.columns) == ["line", "timestamp", "source", "metric", "value", "unit", "avg_s"]
    row = csv[(csv.line == 0) & (csv.metric == "power_mw:VDD_GPU_SOC")]
    assert row.value.tolist() == [2412.0] and row.unit.tolist() == ["mW"]
    assert row.timestamp.tolist() == ["2026-05-09 18:42:06"]

    code, out, err = trb("tegrastats", log, "--out", tmp_path / "t.parquet")
    assert code == 0 and "t.parquet" in out
    pq = pd.read_parquet(tmp_path / "t.parquet")
    assert len(pq) == len(csv) and pq.metric.tolist() == csv.metric.tolist() and pq.value.tolist() == csv.value.tolist()
    assert pq.timestamp.iloc[0] == pd.Timestamp("2026-05-09 18:42:06")

    code, _, _ = trb("tegrastats", log, "--out", tmp_path / "t.csv")
    assert code == 0 and pd.read_csv(tmp_path / "t.csv").value.tolist() == csv.value.tolist()


def test_trb_tegrastats_interval_ms(trb, tmp_path):
    code, out, err = trb("tegrastats", _log(tmp_path), "--interval-ms", "100")
    assert code == 0
    csv = pd.read_csv(io.StringIO(out))
    assert set(csv.loc[csv.metric == "gpu_util_pct", "avg_s"]) == {0.1}
    assert set(csv.loc[csv.metric == "power_mw:VDD_GPU_SOC", "avg_s"]) == {0.0}
    code, out, err = trb("tegrastats", _log(tmp_path), "--interval-ms", "0")
    assert code == 2 and err.count("\n") == 1 and "--interval-ms" in err


def test_trb_tegrastats_mistakes_are_one_line(trb, tmp_path):
    code, out, err = trb("tegrastats", tmp_path / "missing.log")
    assert code == 2 and err.count("\n") == 1 and "missing.log: cannot read it" in err
    code, out, err = trb("tegrastats", _log(tmp_path), "--out", tmp_path / "t.json")
    assert code == 2 and err.count("\n") == 1 and "t.json: unknown suffix '.json', expected .parquet or .csv" in err
    (tmp_path / "notes.txt").write_text("nothing to see\n")
    code, out, err = trb("tegrastats", tmp_path / "notes.txt")
    assert code == 2 and err.count("\n") == 1 and "notes.txt: no tegrastats line in it" in err


# --- a whole run through Ray ---------------------------------------------------------


def _run(tmp_path, cls_onnx, telemetry):
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import spec_from_dict

    spec = spec_from_dict({
        "name": "teg", "output": str(tmp_path / "results"), "schedule": "alone",
        "models": [{"path": str(cls_onnx), "name": "cls", "options": {"threads": 1}}],
        "timing": {"iterations": 40, "warmup": 2, "gap_s": 0.002},
        "telemetry": {"interval_s": 0.05, **telemetry},
    })
    logs = []
    out = run_plan(make_plan(spec), log=logs.append)
    return out, logs


@pytest.mark.ray
@pytest.mark.slow
def test_tegrastats_rows_join_samples_in_a_real_run(tmp_path, cls_onnx, ray_local, standin):
    from trt_ray_bench import results

    out, logs = _run(tmp_path, cls_onnx, {"tegrastats": True, "tegrastats_interval_ms": 50})
    assert not [line for line in logs if line.startswith("warning  telemetry")], logs
    r = results.load(out["run_dir"])
    assert set(r.runs.status) == {"ok"}
    calls = standin.recorded()
    assert [c["argv"] for c in calls] == [["--interval", "50"]]  # the Monitor ran the stand-in
    assert not _alive(calls[0]["pid"])  # and stopped it
    tel = r.telemetry
    teg = tel[tel.source == "tegrastats"]
    want = {"gpu_util_pct", "gpu_freq_mhz:gpc1", "power_mw:VDD_GPU_SOC", "temp_c:tj", "cpu0_freq_mhz"}
    assert want <= set(teg.metric)
    assert set(teg[teg.metric == "power_mw:VDD_GPU_SOC"].value) == {2412.0}
    assert set(teg[teg.metric == "gpu_util_pct"].avg_s) == {0.05}  # a load: the interval its line closes
    assert set(teg[teg.metric == "power_mw:VDD_GPU_SOC"].avg_s) == {0.0}
    stamps = sorted(teg.t_ns.unique())
    assert len(stamps) >= 4 and 30 <= statistics.median(pd.Series(stamps).diff().dropna() / 1e6) <= 80
    s = r.samples
    assert stamps[0] < s.t_start_ns.min()  # on the samples' clock, and running before them
    j = results.samples_with_telemetry(s, teg, ["power_mw:VDD_GPU_SOC", "gpu_freq_mhz"])
    assert j["power_mw:VDD_GPU_SOC"].notna().all() and (j["power_mw:VDD_GPU_SOC"] == 2412).all()
    assert (j["gpu_freq_mhz"] == 0).all()
    assert {"cpu_util_pct"} <= set(tel[tel.source == "host"].metric)  # the host sampler still runs


@pytest.mark.ray
@pytest.mark.slow
def test_tegrastats_asked_for_but_absent_warns_and_the_run_goes_on(tmp_path, cls_onnx, ray_local, monkeypatch):
    # the driver's PATH without the folders that hold a tegrastats (a real Jetson's /usr/bin)
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.path.exists(os.path.join(d, "tegrastats"))]
    monkeypatch.setenv("PATH", os.pathsep.join(dirs))
    out, logs = _run(tmp_path, cls_onnx, {"tegrastats": True})
    runs = out["tables"]["runs"]
    assert set(runs.status) == {"ok"}
    assert [line for line in logs if line.startswith("warning  telemetry: tegrastats: not found on PATH")]
    tel = out["tables"]["telemetry"]
    assert "tegrastats" not in set(tel.source) and "host" in set(tel.source)

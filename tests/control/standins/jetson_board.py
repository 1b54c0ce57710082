"""The stand-in Jetson AGX Orin shared by the stand-ins for ``jetson_clocks`` and
``nvpmodel`` (hardware-only commands) in the tests of ``trt_ray_bench.control``.

Lives next to them (the folder first on PATH): ``config.json`` names the fake board's
root folder (its ``/sys``, ``/etc``) and what to simulate, ``jetson_state.json`` holds
what sysfs cannot (the mode in force, CPUs, EMC, fan), ``calls.jsonl`` gets one line
per call. The GPU's clocks are the fake devfreq files themselves, so the stand-ins and
trb's own sysfs writes see one state.
"""

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_NODE = "sys/class/devfreq/17000000.ga10b"
#: paths as the real tools name them (``jetson_clocks --store`` writes these)
GPU_SYSFS = "/sys/devices/platform/17000000.ga10b/devfreq/17000000.ga10b"
CPU_SYSFS = "/sys/devices/system/cpu/cpu{}/cpufreq/scaling_min_freq"
EMC_LOCK = "/sys/kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked"
FAN_PWM = "/sys/devices/platform/pwm-fan/hwmon/hwmon2/pwm1"
N_CPUS = 12
CPU_MIN = 729600  # kHz
CPU_MAXN = 2201600


def config():
    p = HERE / "config.json"
    return json.loads(p.read_text()) if p.exists() else {}


def root():
    return Path(config()["root"])


def log(tool, argv, stdin=None):
    entry = {"tool": tool, "argv": argv}
    if stdin is not None:
        entry["stdin"] = stdin
    with open(HERE / "calls.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def state():
    return json.loads((HERE / "jetson_state.json").read_text())


def save(st):
    (HERE / "jetson_state.json").write_text(json.dumps(st))


def gpu(name, value=None):
    """Read (or write) a file of the fake GPU devfreq node."""
    p = root() / GPU_NODE / name
    if value is None:
        return int(p.read_text().split()[0])
    p.write_text(f"{value}\n")


def gpu_freqs():
    return [int(v) for v in (root() / GPU_NODE / "available_frequencies").read_text().split()]


def modes():
    """{id: {"name", "gpu_min", "gpu_max", "cpu_max", "emc_max", "online": [0/1]*12}} from
    the fake board's /etc/nvpmodel.conf."""
    out, cur = {}, None
    for line in (root() / "etc/nvpmodel.conf").read_text().splitlines():
        m = re.match(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+)\s*>", line.strip())
        if m:
            cur = out.setdefault(int(m.group(1)), {"name": m.group(2), "online": [1] * N_CPUS})
            continue
        if line.startswith("<"):
            cur = None
            continue
        parts = line.split()
        if cur is None or len(parts) != 3:
            continue
        param, arg, value = parts[0], parts[1], int(parts[2])
        if param == "CPU_ONLINE":
            cur["online"][int(arg.split("_")[1])] = value
        elif param == "GPU":
            cur["gpu_min" if arg == "MIN_FREQ" else "gpu_max"] = value
        elif param == "CPU_A78_0" and arg == "MAX_FREQ":
            cur["cpu_max"] = value
        elif param == "EMC":
            cur["emc_max"] = value
    return out


def set_mode(mode_id):
    """What nvpmodel -m does to the board: caps, online CPUs, GPU range (-1: no cap, 0: lowest)."""
    m = modes()[mode_id]
    freqs = gpu_freqs()
    lo = freqs[0] if m["gpu_min"] <= 0 else m["gpu_min"]
    hi = freqs[-1] if m["gpu_max"] < 0 else m["gpu_max"]
    gpu("max_freq", max(hi, gpu("min_freq")))  # in the order the kernel accepts
    gpu("min_freq", lo)
    gpu("max_freq", hi)
    gpu("cur_freq", lo)
    st = state()
    cpu_max = CPU_MAXN if m["cpu_max"] < 0 else m["cpu_max"]
    st.update(mode=mode_id, online=m["online"], cpu_min=[CPU_MIN] * N_CPUS, cpu_max=cpu_max,
              cpu_cur=[CPU_MIN] * N_CPUS, emc_max=m["emc_max"], emc_cur=min(2133000000, m["emc_max"]), emc_lock=0)
    save(st)


def initial_state(mode_id):
    save({"mode": mode_id, "fan": 55})
    set_mode(mode_id)

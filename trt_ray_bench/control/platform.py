"""What machine a number was taken on: everything about it, collected in one place.

On a Jetson: the board (``/proc/device-tree/model``), the Jetson Linux (L4T) release
(``/etc/nv_tegra_release``, e.g. ``# R36 (release), REVISION: 4.4, GCID: ...`` is 36.4.4;
else the ``nvidia-l4t-core`` package's version), the JetPack version (the
``nvidia-jetpack`` package's version, else NVIDIA's L4T-to-JetPack table), the power mode
and the GPU's frequency range. The Jetson files are read under ``TRB_ROOT``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional, Tuple

from ._command import run, which
from ._paths import read_text, system_path

JETSON_MODEL = "/proc/device-tree/model"
NV_TEGRA_RELEASE = "/etc/nv_tegra_release"
NVIDIA_DRIVER = "/proc/driver/nvidia/version"
_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")
_VERSION = re.compile(r"\d+(?:\.\d+)*")

#: Jetson Linux (L4T) release -> JetPack, from NVIDIA's JetPack archive
#: (developer.nvidia.com/embedded/jetpack-archive), for boards without nvidia-jetpack.
L4T_JETPACK = {
    "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4", "32.7.5": "4.6.5",
    "32.7.6": "4.6.6", "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2",
    "35.5.0": "5.1.3", "35.6.0": "5.1.4", "35.6.1": "5.1.5", "36.2.0": "6.0 DP", "36.3.0": "6.0",
    "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}
#: a release not in the table: its JetPack series only
L4T_SERIES = {"32": "4.6.x", "35": "5.1.x", "36": "6.x", "38": "7.x"}


def _cpu_model() -> str:
    for line in read_text(Path("/proc/cpuinfo")).splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    """A distribution's version; for a module already imported without a pip record
    (JetPack's TensorRT in the system site-packages), its ``__version__``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        mod = sys.modules.get(dist.replace("-", "_"))
        return str(getattr(mod, "__version__", "") or "")


#: nvidia-smi's exit statuses for a driver that does not answer (man nvidia-smi, RETURN
#: VALUE): 9 the driver is not loaded, 12 NVML's library cannot be loaded, 15 the GPU fell
#: off the bus, 18 the driver and its library are of different versions; 124: no answer
#: within the probe's time (``_command.run``)
DRIVER_DOWN_RC = (9, 12, 15, 18, 124)
_DRIVER_DOWN_SAYS = ("couldn't communicate with the nvidia driver", "failed to initialize nvml",
                     "version mismatch", "fallen off the bus", "nvidia-smi has failed")
#: what the user does about it
DRIVER_FIX = ("load the driver (sudo modprobe nvidia) or reinstall it for the running kernel (a kernel update "
              "without the driver's DKMS module is the usual cause), or reboot; nvidia-smi must list the GPU")
_PROBE_TTL_S = 30.0
_probed: Dict[str, Tuple[float, Optional[str]]] = {}


def _nvml_answers() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - not installed, no driver, no library: nvidia-smi says which
        return False
    try:
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass
    return True


def driver_problem() -> Optional[str]:
    """Why the NVIDIA driver does not answer on this machine, in nvidia-smi's words with its
    exit status (``nvidia-smi exit 9: NVIDIA-SMI has failed because it couldn't communicate
    with the NVIDIA driver. ...``); None where it answers, or where no nvidia-smi is there
    to ask. NVML answering is enough (unless ``TRB_GPU_SOURCE=nvidia-smi``); else
    nvidia-smi's GPU listing (the one ``gpus.list_gpus`` runs) is asked, once per process
    and nvidia-smi every 30 s."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    now = time.monotonic()
    hit = _probed.get(smi)
    if hit is not None and now - hit[0] < _PROBE_TTL_S:
        return hit[1]
    problem = None
    if os.environ.get("TRB_GPU_SOURCE", "") == "nvidia-smi" or not _nvml_answers():
        a = run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"], timeout_s=20.0)
        if not a.ok and (a.rc in DRIVER_DOWN_RC or a.says(*_DRIVER_DOWN_SAYS)):
            problem = f"nvidia-smi exit {a.rc}: {a.first_line()}"
    _probed[smi] = (now, problem)
    return problem


def driver_text(problem: str) -> str:
    """The driver's problem and its fix, for a one-line refusal."""
    return f"the NVIDIA driver is not answering ({problem}); fix: {DRIVER_FIX}"


def detect_platform() -> Dict[str, str]:
    """``kind``: ``jetson`` (device-tree model names a Jetson), ``dgpu`` (an NVIDIA driver
    answers), or ``cpu``; and the board or GPU name. A machine whose NVIDIA driver is
    installed but does not answer (``driver_problem``) is ``cpu`` with ``driver``: why."""
    model = read_text(system_path(JETSON_MODEL))
    if "jetson" in model.lower() or "nvidia" in model.lower():
        return {"kind": "jetson", "board": model}
    if shutil.which("nvidia-smi") or system_path(NVIDIA_DRIVER).exists():
        problem = driver_problem()
        if problem:
            return {"kind": "cpu", "board": "", "driver": problem}
        return {"kind": "dgpu", "board": ""}
    return {"kind": "cpu", "board": ""}


def on_jetson() -> bool:
    """This machine is a Jetson (whose TensorRT and CUDA come with JetPack, not from pip);
    False where it cannot be told (a message's wording must not fail)."""
    try:
        return detect_platform()["kind"] == "jetson"
    except Exception:  # noqa: BLE001
        return False


def _dpkg_version(package: str) -> str:
    if which("dpkg-query") is None:
        return ""
    a = run(["dpkg-query", "-W", "-f", "${Version}", package], timeout_s=10.0)
    return a.out.strip() if a.ok else ""


def l4t_release() -> str:
    """``36.4.4``: the Jetson Linux release, or ""."""
    m = _RELEASE.search(read_text(system_path(NV_TEGRA_RELEASE)))
    if m:
        rev = m.group(2)
        return f"{m.group(1)}.{rev}" if rev.count(".") else f"{m.group(1)}.{rev}.0"
    m = _VERSION.match(_dpkg_version("nvidia-l4t-core"))  # 36.4.4-20250616085344
    return m.group(0) if m else ""


def jetpack_version(l4t: str) -> str:
    """``6.2.1``: the installed nvidia-jetpack (``6.2.1+b38``, ``5.1.1-b56``), else what
    the L4T release ships with, else its series (``6.x``), else ""."""
    m = _VERSION.match(_dpkg_version("nvidia-jetpack"))
    if m:
        return m.group(0)
    if not l4t:
        return ""
    return L4T_JETPACK.get(l4t) or L4T_SERIES.get(l4t.split(".")[0], "")


def jetson_info() -> Dict[str, str]:
    """L4T, JetPack, the power mode and the GPU frequency range of this Jetson; every
    field "" where it cannot be read. Runs ``nvpmodel -q`` and ``dpkg-query`` (no root)."""
    from .devfreq import gpu_range_text
    from .nvpmodel import current_mode_text

    info = {"l4t": "", "jetpack": "", "power_mode": "", "gpu_freq_range_mhz": ""}
    for key, get in (("l4t", l4t_release), ("power_mode", current_mode_text), ("gpu_freq_range_mhz", gpu_range_text)):
        try:
            info[key] = get() or ""
        except Exception:  # noqa: BLE001 - provenance must not fail a run
            info[key] = ""
    try:
        info["jetpack"] = jetpack_version(info["l4t"])
    except Exception:  # noqa: BLE001
        info["jetpack"] = ""
    return info


#: JetPack's CUDA toolkit: ``{"cuda": {"version": "12.6.68"}}`` (JetPack 5 and later), or
#: ``CUDA Version 10.2.300`` (JetPack 4)
CUDA_VERSION_FILES = ("/usr/local/cuda/version.json", "/usr/local/cuda/version.txt")


def jetson_cuda_version() -> str:
    """``12.6``: the CUDA that JetPack installed (major.minor), or ""."""
    for f in CUDA_VERSION_FILES:
        text = read_text(system_path(f))
        if not text:
            continue
        try:
            v = str(json.loads(text)["cuda"]["version"]) if f.endswith(".json") else text.rsplit(" ", 1)[-1]
        except (ValueError, KeyError, TypeError):
            continue
        m = re.match(r"(\d+)\.(\d+)", v)
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return ""


def collect_provenance(gpu_index: int = 0) -> Dict[str, object]:
    """Host, OS, CPU and the versions of everything that can change a number; the GPU's
    name and driver are those of NVML's GPU ``gpu_index`` (the experiment's)."""
    from .. import __version__

    plat = detect_platform()
    jetson = jetson_info() if plat["kind"] == "jetson" else {}
    gpu = {}
    if plat["kind"] == "dgpu":
        try:
            from ..telemetry.nvml import gpu_info

            gpu = gpu_info(gpu_index) or {}
        except Exception:  # noqa: BLE001 - provenance must not fail a run
            gpu = {}
    return {
        "gpu_name": gpu.get("name") or "",
        "gpu_driver": gpu.get("driver_version") or "",
        # the driver's CUDA (NVML) on a desktop GPU; JetPack's CUDA on a Jetson
        "cuda_version": gpu.get("cuda_driver_version") or (jetson_cuda_version() if plat["kind"] == "jetson" else ""),
        "host": socket.gethostname(),
        "platform": plat["kind"],
        "board": plat["board"],
        "l4t": jetson.get("l4t", ""),
        "jetpack": jetson.get("jetpack", ""),
        "power_mode": jetson.get("power_mode", ""),
        "gpu_freq_range_mhz": jetson.get("gpu_freq_range_mhz", ""),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "python_version": platform.python_version(),
        "trb_version": __version__,
        "ray_version": _version("ray"),
        "onnxruntime_version": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "numpy_version": _version("numpy"),
        "ultralytics_version": _version("ultralytics"),
        "tensorrt_version": _version("tensorrt"),
        "torch_version": _version("torch"),
    }

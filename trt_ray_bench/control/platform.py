"""What machine a number was taken on: everything about it, collected in one place."""

from __future__ import annotations

import os
import platform
import shutil
import socket
from importlib import metadata
from pathlib import Path
from typing import Dict

JETSON_MODEL = Path("/proc/device-tree/model")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read(Path("/proc/cpuinfo")).splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def detect_platform() -> Dict[str, str]:
    """``kind``: ``jetson`` (device-tree model names a Jetson), ``dgpu`` (an NVIDIA driver
    answers), or ``cpu``; and the board or GPU name."""
    model = _read(JETSON_MODEL)
    if "jetson" in model.lower() or "nvidia" in model.lower():
        return {"kind": "jetson", "board": model}
    if shutil.which("nvidia-smi") or Path("/proc/driver/nvidia/version").exists():
        return {"kind": "dgpu", "board": ""}
    return {"kind": "cpu", "board": ""}


def detect_gpus() -> int:
    """How many GPUs this node has, for Ray's ``num_gpus`` (Ray does not see a Jetson's
    integrated GPU by itself)."""
    if detect_platform()["kind"] == "jetson":
        return 1
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML: no desktop GPU we can use
        return 0


def collect_provenance() -> Dict[str, object]:
    """Host, OS, CPU and the versions of everything that can change a number."""
    from .. import __version__

    plat = detect_platform()
    gpu = {}
    if plat["kind"] == "dgpu":
        try:
            from ..telemetry.nvml import gpu_info

            gpu = gpu_info(0) or {}
        except Exception:  # noqa: BLE001 - provenance must not fail a run
            gpu = {}
    return {
        "gpu_name": gpu.get("name") or "",
        "gpu_driver": gpu.get("driver_version") or "",
        "host": socket.gethostname(),
        "platform": plat["kind"],
        "board": plat["board"],
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

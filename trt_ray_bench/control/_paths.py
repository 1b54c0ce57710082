"""Where the machine's own files are read: ``/``, or a stand-in tree.

The Jetson files (``/proc/device-tree/model``, ``/etc/nv_tegra_release``,
``/etc/nvpmodel.conf``) are read under ``TRB_ROOT``; the GPU's devfreq node, the thermal
zones and the over-current counters (``telemetry.thermal``) under ``TRB_SYSFS_ROOT``
(default: ``TRB_ROOT``). Both default to ``/``; the tests point them at
a fake board in a temporary folder, which is how a desktop runner checks Jetson code.
"""

from __future__ import annotations

import os
from pathlib import Path


def system_path(path: str) -> Path:
    """``path`` (absolute, e.g. ``/etc/nv_tegra_release``) under ``TRB_ROOT``."""
    return Path(os.environ.get("TRB_ROOT") or "/") / path.lstrip("/")


def sysfs_path(path: str) -> Path:
    """``path`` (absolute, e.g. ``/sys/class/devfreq``) under ``TRB_SYSFS_ROOT``."""
    root = os.environ.get("TRB_SYSFS_ROOT") or os.environ.get("TRB_ROOT") or "/"
    return Path(root) / path.lstrip("/")


def journal_dir() -> Path:
    """The node's journal of machine changes (``control.journal``): ``$TRB_JOURNAL_DIR``,
    else ``/var/tmp/trt_ray_bench/journal`` under ``TRB_ROOT``."""
    return Path(os.environ.get("TRB_JOURNAL_DIR") or system_path("/var/tmp/trt_ray_bench/journal"))


def ensure_journal_dir() -> Path:
    """``journal_dir``, made where missing: sticky and world-writable, like /tmp (every user
    of the board may journal; each removes only their own files). ``jetson_clocks --store``
    keeps its settings there too, each in a private folder: kept across reboots, as the
    journal is."""
    d = journal_dir()
    if not d.is_dir():
        d.mkdir(parents=True, exist_ok=True)
        try:
            d.chmod(0o1777)
        except OSError:
            pass
    return d


def read_text(path: Path) -> str:
    """A small system file's text without the device tree's trailing NUL; "" if unreadable."""
    try:
        return path.read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return ""

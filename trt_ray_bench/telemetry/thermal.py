"""The board's thermal state read from sysfs: the thermal zones' temperatures (the hottest
one is what a cooldown waits for where no NVML GPU answers) and the over-current event
counters of Orin and Thor (``soctherm_oc``), read before and after each phase.

Every function takes the sysfs ``root`` (``/`` on the machine; the tests a folder laid
out like it), so the cluster layer passes ``control._paths.sysfs_path("/")``.

Thermal zones: ``/sys/class/thermal/thermal_zone*/type`` and ``temp`` (millidegrees C).
A zone that cannot be read (some are powered off: ``cv0-thermal`` on an idle Orin), reads
below -40 C (tegrastats' -256 C for a zone that is off) or above 200 C is left out, and so
is the PMIC's die sensor (``PMIC-Die``, a fixed 100 C on Xavier and TX2: never a
temperature to wait for).

Over-current counters: ``/sys/class/hwmon/hwmon*/oc<N>_event_cnt`` (the ``soctherm_oc``
hwmon of the tegra234 over-current driver, Orin and Thor): ``oc1`` counts under-voltage
events, ``oc2`` average over-current, ``oc3`` instantaneous over-current (NVIDIA's
"Platform Power and Performance" pages of Jetson Linux 35 and 36). Each event throttles
the CPU and GPU clocks for a moment; the counters only grow (until a reboot).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

#: zones below/above these (°C) are not temperatures: a zone that is off, a broken sensor
_LOW_C, _HIGH_C = -40.0, 200.0
#: zone types that are never a temperature to wait for (a fixed reading)
_NOT_A_TEMPERATURE = re.compile(r"pmic", re.I)
#: what each over-current counter counts (NVIDIA's names)
OC_NAMES = {"oc1": "under-voltage", "oc2": "average over-current", "oc3": "instantaneous over-current"}


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def thermal_zones(root: Path) -> List[Tuple[str, float]]:
    """(type, °C) of every readable thermal zone under ``root``, in zone order."""
    base = Path(root) / "sys" / "class" / "thermal"
    out = []
    zones = sorted(base.glob("thermal_zone*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    for z in zones:
        kind = _read(z / "type") or z.name
        raw = _read(z / "temp")
        try:
            c = int(raw) / 1000.0
        except (TypeError, ValueError):
            continue
        if _LOW_C <= c <= _HIGH_C and not _NOT_A_TEMPERATURE.search(kind):
            out.append((kind, c))
    return out


def hottest_zone(root: Path) -> Optional[Tuple[str, float]]:
    """The hottest readable thermal zone (type, °C), or None where there is none."""
    zones = thermal_zones(root)
    return max(zones, key=lambda z: z[1]) if zones else None


def oc_event_counts(root: Path) -> Dict[str, int]:
    """The over-current event counters under ``root``: ``{"oc1": n, "oc2": n, "oc3": n}``
    (those that can be read; empty on a board without them). Where several hwmon folders
    have them (never seen), their counts are added."""
    out: Dict[str, int] = {}
    base = Path(root) / "sys" / "class" / "hwmon"
    for f in sorted(base.glob("hwmon*/oc*_event_cnt")):
        m = re.fullmatch(r"(oc\d+)_event_cnt", f.name)
        raw = _read(f)
        if m is None or raw is None:
            continue
        try:
            out[m.group(1)] = out.get(m.group(1), 0) + int(raw.split()[0])
        except (ValueError, IndexError):
            continue
    return out


def oc_delta(before: Dict[str, int], after: Dict[str, int]) -> Tuple[Optional[int], Optional[str]]:
    """The events counted between two reads: (their total, ``oc3 (instantaneous
    over-current) +37``, the counters that moved), or (None, None) where the counters could
    not be read both times."""
    names = sorted(set(before) & set(after))
    if not names:
        return None, None
    moved = [(n, after[n] - before[n]) for n in names if after[n] != before[n]]
    total = sum(max(0, d) for _, d in moved)
    detail = ", ".join(f"{n} ({OC_NAMES.get(n, 'over-current')}) {d:+d}" for n, d in moved)
    return total, detail or None


def wait_until_cool(read: Callable[[], Optional[dict]], temp_c: float, timeout_s: float,
                    poll_s: float = 0.25) -> dict:
    """Poll ``read()`` (``{"c": °C, "what": "GPU"}`` or None) until it is at or below
    ``temp_c``, at most ``timeout_s``: ``{"waited_s", "c" (the last reading), "what",
    "reached"}``. A reading that fails midway keeps the last one."""
    t0 = time.monotonic()
    now = read()
    while now is not None and now["c"] > temp_c and time.monotonic() - t0 < timeout_s:
        time.sleep(min(poll_s, max(0.0, timeout_s - (time.monotonic() - t0))))
        now = read() or now
    c = now["c"] if now else None
    return {"waited_s": time.monotonic() - t0, "c": c, "what": now["what"] if now else None,
            "reached": c is not None and c <= temp_c}

"""Host telemetry through psutil: CPU utilization (total and per core), CPU frequency,
memory (``ram_used_mib``, ``ram_total_mib``: MiB, 2**20 bytes), and, given a sysfs root
with thermal zones, the hottest zone's temperature (``temp_c:zone``, °C: what a cooldown
waits on where there is no NVML or tegrastats). Metric names match the Jetson sampler's
where they mean the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import psutil

from ._collect import Reading
from .thermal import hottest_zone


class HostSampler:
    source = "host"
    #: psutil's CPU utilisation is the average since the previous call (the Collector's poll)
    since_last_poll = ("cpu_util_pct",) + tuple(f"cpu{i}_util_pct" for i in range(psutil.cpu_count() or 1))

    def __init__(self, thermal_root: Optional[Path] = None):
        psutil.cpu_percent(percpu=True)  # the first call only starts the interval
        self._has_freq = True
        self._thermal = thermal_root if thermal_root is not None and hottest_zone(thermal_root) else None

    def read(self) -> Iterable[Reading]:
        out: List[Reading] = []
        per = psutil.cpu_percent(percpu=True)
        out.append(("cpu_util_pct", sum(per) / max(1, len(per)), "%"))
        out.extend((f"cpu{i}_util_pct", v, "%") for i, v in enumerate(per))
        if self._has_freq:
            try:
                f = psutil.cpu_freq()
            except Exception:
                f = None
            if f is None or not f.current:
                self._has_freq = False
            else:
                out.append(("cpu_freq_mhz", f.current, "MHz"))
        vm = psutil.virtual_memory()
        out.append(("ram_used_mib", (vm.total - vm.available) / 2**20, "MiB"))
        out.append(("ram_total_mib", vm.total / 2**20, "MiB"))
        zone = hottest_zone(self._thermal) if self._thermal is not None else None
        if zone is not None:
            out.append(("temp_c:zone", zone[1], "C"))
        return out

#!/bin/bash
# The GPU issue's proof on the lent H100, in one device call, after the bundle's setup.sh
# (../shared/device/README.md) and with the exported models already copied to
# /tmp/trbcache/models (benchmarks/gpu_models.py exports them here; carry them in pieces).
#   bash .device/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh
# Everything it prints also lands in $OUT (logs, compare tables, the results as a tar).
set -uo pipefail
. /tmp/trt_env.sh
export TRB_CACHE_DIR=/tmp/trbcache TRB_TEST_CACHE=/tmp/trbcache PYTHONPATH=$PWD:$PYTHONPATH PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/trb-results
PY=${PY310:-python3}
# This rig's TensorRT has no cuBLAS/cuDNN: no tactics from them; level 0 keeps builds short.
FAST=(--set 'models.*.options.tactics=none' --set 'models.*.options.opt_level=0' --output "$R")
trb() { "$PY" -m trt_ray_bench.cli "$@"; }
step() { echo; echo "=== $*"; }

step "GPU tests"; "$PY" -m pytest -q -p no:cacheprovider tests/gpu tests/telemetry tests/control 2>&1 | tee "$OUT/pytest.log"
step "fidelity vs a bare CUDA-event loop"; "$PY" benchmarks/trt_fidelity.py --tactics none --opt-level 0 --rounds 5 2>&1 | tee "$OUT/fidelity.log"
step "NVML overhead"; "$PY" benchmarks/nvml_overhead.py 2>&1 | tee "$OUT/nvml.log"
step "five engines alone vs together, MPS off then on"
trb run experiments/gpu_alone_together.yaml "${FAST[@]}" 2>&1 | tee "$OUT/together.log"
trb run experiments/gpu_alone_together.yaml "${FAST[@]}" --set mps=true 2>&1 | tee -a "$OUT/together.log"
step "gap study, clocks default then locked"
trb run experiments/seed001_gap_study.yaml "${FAST[@]}" 2>&1 | tee "$OUT/gap.log"
trb run experiments/seed001_gap_study.yaml "${FAST[@]}" --set clocks=max 2>&1 | tee -a "$OUT/gap.log"
step "timing pitfalls"; trb run experiments/seed004_timing_pitfalls.yaml "${FAST[@]}" 2>&1 | tee "$OUT/pitfalls.log"
step "tables"
{
  for r in "$R"/gpu_alone_together/*/; do echo "## $r"; trb compare "$r"; done
  trb compare "$R/seed001_gap_study" --all --baseline gap-0
  trb compare "$R/seed004_timing_pitfalls" --baseline warm-sync
  "$PY" - "$R" <<'PY'
import sys
from trt_ray_bench import results
r = results.load(sys.argv[1] + "/seed001_gap_study")
j = results.samples_with_telemetry(r.samples[r.samples.in_window], r.telemetry, ["gpu_freq_mhz", "pstate", "power_mw:gpu"])
j = j.merge(r.runs[["run_id", "model", "clocks_mode"]], on=["run_id", "model"])
print(j.groupby(["clocks_mode", "model"])[["gpu_ms", "host_ms", "gpu_freq_mhz", "pstate", "power_mw:gpu"]].median().round(3))
t = results.load(sys.argv[1] + "/gpu_alone_together").runs
print(t[["run_id", "mps", "model", "phase", "gpu_p50_ms", "p50_ms", "start_skew_us", "start_late_us"]])
PY
} 2>&1 | tee "$OUT/tables.md"
tar -czf "$OUT/results.tgz" -C "$R" . && ls -la "$OUT"

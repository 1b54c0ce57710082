#!/bin/bash
# The GPU issue's proof on the lent H100, after the bundle's setup.sh
# (../shared/device/README.md) and with the exported models already copied to
# /tmp/trbcache/models (benchmarks/gpu_models.py exports them here; carry them in pieces).
# A device call may run 10 minutes at most, so the proof comes in stages, one or more per call:
#   bash .device/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh tests fidelity
#   bash benchmarks/gpu_proof.sh together
#   bash benchmarks/gpu_proof.sh gap pitfalls skew tables
# With no stage it runs them all. Everything it prints also lands in $OUT (logs, compare
# tables, the results as a tar). Engines are cached in /tmp/trbcache between calls.
set -uo pipefail
. /tmp/trt_env.sh
export TRB_CACHE_DIR=/tmp/trbcache TRB_TEST_CACHE=/tmp/trbcache PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/trb-results
PY=${PY310:-python3}
# This rig's TensorRT has no cuBLAS/cuDNN: no tactics from them; level 0 keeps builds short.
FAST=(--set 'models.*.options.tactics=none' --set 'models.*.options.opt_level=0' --output "$R")
trb() { "$PY" -m trt_ray_bench.cli "$@"; }
step() { echo; echo "=== $*  ($(date +%T))"; }

tests() {
  step "GPU tests"
  "$PY" -m pytest -q -p no:cacheprovider tests/gpu tests/telemetry tests/control -k "not jetson" 2>&1 | tee "$OUT/pytest.log"
}
fidelity() {
  step "fidelity vs a bare CUDA-event loop"
  "$PY" benchmarks/trt_fidelity.py --tactics none --opt-level 0 --rounds 5 2>&1 | tee "$OUT/fidelity.log"
}
nvml() { step "NVML overhead"; "$PY" benchmarks/nvml_overhead.py 2>&1 | tee "$OUT/nvml.log"; }
together() {
  step "five engines alone vs together, MPS off then on"
  trb run experiments/gpu_alone_together.yaml "${FAST[@]}" 2>&1 | tee "$OUT/together.log"
  trb run experiments/gpu_alone_together.yaml "${FAST[@]}" --set mps=true 2>&1 | tee -a "$OUT/together.log"
}
gap() {
  step "gap study, clocks default then locked"
  trb run experiments/seed001_gap_study.yaml "${FAST[@]}" 2>&1 | tee "$OUT/gap.log"
  trb run experiments/seed001_gap_study.yaml "${FAST[@]}" --set clocks=max 2>&1 | tee -a "$OUT/gap.log"
}
pitfalls() {
  step "timing pitfalls"
  trb run experiments/seed004_timing_pitfalls.yaml "${FAST[@]}" 2>&1 | tee "$OUT/pitfalls.log"
}
skew() {
  step "start skew of 5 actors on this machine's cores"
  "$PY" benchmarks/start_skew.py --threads 1 --repeats 10 2>&1 | tee "$OUT/skew.log"
}
tables() {
  step "tables"
  {
    for r in "$R"/gpu_alone_together/*/; do echo "## $r"; trb compare "$r"; done
    trb compare "$R/seed001_gap_study" --all --baseline gap-0
    trb compare "$R/seed004_timing_pitfalls" --baseline warm-sync
    "$PY" benchmarks/gpu_tables.py "$R"
  } 2>&1 | tee "$OUT/tables.md"
  tar -czf "$OUT/results.tgz" -C "$R" . && ls -la "$OUT"
}

stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(tests fidelity nvml together gap pitfalls skew tables)
for s in "${stages[@]}"; do "$s"; done

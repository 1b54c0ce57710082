#!/bin/bash
# The GPU issue's proof on the lent H100, after the bundle's setup.sh
# (../shared/device/README.md) and with the exported models already copied to
# /tmp/trbcache/models (benchmarks/gpu_models.py exports them here; carry them in pieces).
# A device call may run 10 minutes at most, so the proof comes in stages, one or more per call:
#   bash .device/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh tests fidelity
#   bash benchmarks/gpu_proof.sh together
#   bash benchmarks/gpu_proof.sh gap pitfalls skew tables
#   bash benchmarks/gpu_proof.sh pipeline seed002   (need the chunks of benchmarks/gpu_pipeline_wheels.sh too)
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
torch310() {
  # Ultralytics' pre/post-processing needs torch under the rig's Python 3.10. PyPI's cp310
  # torch 2.11 (cu13) ships without its CUDA libraries here; it borrows the system torch's
  # (same cu13 layout, found through the wheel's $ORIGIN/../../nvidia rpath).
  local py site=""
  for py in $(type -ap python3); do   # the system's python3, not the rig's 3.10
    [ "$py" -ef "$PY" ] && continue
    site=$(PYTHONPATH= "$py" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null) && break
  done
  [ -d "$site/nvidia" ] && ln -sfn "$site/nvidia" /tmp/site310/nvidia
  mkdir -p /tmp/trbcache/models && cp -n /tmp/stage/files/*.onnx /tmp/trbcache/models/ 2>/dev/null
  "$PY" -c 'import torch, torchvision, cv2, ultralytics, tensorrt as t; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "ultralytics", ultralytics.__version__, "tensorrt", t.__version__)'
}
pipeline() {
  step "the predict pipeline over TensorRT (GPU test)"
  torch310
  "$PY" -m pytest -q -p no:cacheprovider tests/gpu -k pipeline 2>&1 | tee "$OUT/pytest-pipeline.log"
}
seed002() {
  step "seed 002: inference vs validation vs without_val, TensorRT, alone and together"
  torch310 >/dev/null
  trb run experiments/seed002_inference_vs_validation.yaml "${FAST[@]}" --set 'models.*.backend=tensorrt' \
      --set data.synthetic=${SEED002_IMAGES:-100} --set timing.iterations=${SEED002_ITERS:-200} --set timing.warmup=50 \
      ${SEED002_SET:-} 2>&1 | tee -a "$OUT/seed002.log"
  trb compare "$R/seed002_inference_vs_validation" --by mode 2>&1 | tee "$OUT/seed002.md"
  tar -czf "$OUT/seed002.tgz" -C "$R" seed002_inference_vs_validation
}
models() {
  # the exports carried in .device/mchunks (benchmarks/gpu_models.py): used as is, no Ultralytics here
  mkdir -p /tmp/trbcache/models && cp -n /tmp/stage/files/*.onnx /tmp/trbcache/models/ 2>/dev/null; ls /tmp/trbcache/models
}
gputests() {
  step "GPU tests on cuda-python, then the same on pycuda (issue 12)"
  "$PY" -m pytest -q -s -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_cudapython.log"
  TRB_CUDA=pycuda "$PY" -m pytest -q -s -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_pycuda.log"
}
fidelity2() {
  step "fidelity on each CUDA binding"
  for b in cuda-python pycuda; do
    "$PY" benchmarks/trt_fidelity.py --tactics none --opt-level 0 --rounds ${ROUNDS:-7} --cuda $b 2>&1 | tee "$OUT/fidelity-$b.log"
  done
}
precision() {
  step "FP32 / FP16 (flag, converted) / INT8 (Q/DQ, calibrator), yolov8n 640"
  "$PY" benchmarks/trt_precision.py --tactics none --opt-level 0 --images 8 2>&1 | tee "$OUT/precision.md"
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

stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(tests fidelity nvml together gap pitfalls pipeline seed002 skew tables)
for s in "${stages[@]}"; do "$s"; done

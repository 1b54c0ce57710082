#!/bin/bash
# The GPU issue's proof on the lent H100, after the bundle's setup.sh
# (../shared/device/README.md) and with the exported models already copied to
# /tmp/trbcache/models (benchmarks/gpu_models.py exports them here; carry them in pieces).
# A device call may run 10 minutes at most, so the proof comes in stages, one or more per call:
#   bash .device/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh tests fidelity
#   bash benchmarks/gpu_proof.sh together
#   bash benchmarks/gpu_proof.sh gap pitfalls skew tables
#   bash benchmarks/gpu_proof.sh pipeline seed002   (need the chunks of benchmarks/gpu_pipeline_wheels.sh too)
#   bash benchmarks/gpu_proof.sh models multigpu    (the 2-GPU machine, kind nvidia-h200-x2)
#   bash benchmarks/gpu_proof.sh models pycudatests precision   (issue 12: the pycuda exit, LSUV precision)
#   EVENTS_S=500 bash benchmarks/gpu_proof.sh models events     (issue 14: memory flat; 600 s a call)
#   bash .device38/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh models plan85   (the JetPack 5 stack, below)
#   bash .device/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh models prebuild keepsearch energy precisionrun
#   (or over three calls: models engines5 energy; keepsearch; enginesprec precisionrun)
# TensorRT 8.5 has no optimization level to lower: on an H100 (2026-12-06) ten of its 640-px
# builds at once did not finish in 6 minutes, five not in 10. 8.6 at level 0 built the five
# keep-up engines at once in 41-106 s each. Even 8.5's small builds take 1.5 to 6 minutes each
# on an H100 (a build kept one core busy and the GPU 4-45 % busy; the wheel's sm_90 kernels
# are PTX only, and CUDA's kernel cache stayed empty), so plan85 orders the suite to prove
# most per build. The 640-px studies (keep-up, energy, precision) run on 8.6. A device
# session of 30 minutes holds one stack's transfer (~1-2 min) and about 25 minutes of work.
# With no stage it runs them all. Everything it prints also lands in $OUT (logs, compare
# tables, the results as a tar). Engines are cached in /tmp/trbcache between calls.
set -uo pipefail
. ${TRT_ENV:-/tmp/trt_env.sh}   # the stack's environment (setup.sh writes it; TRT_ENV picks another)
export TRB_CACHE_DIR=/tmp/trbcache TRB_TEST_CACHE=/tmp/trbcache PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
# kernels JIT-compiled for this GPU are kept for the next build (CUDA's default cache holds 256 MB)
export CUDA_CACHE_PATH=/tmp/cuda-cache CUDA_CACHE_MAXSIZE=2147483648   # 2 GiB (CUDA states 4 GiB as the maximum)
# kernels loaded as they are used (TensorRT 8.5.3.1's CUDA 11 runtime loads them all eagerly)
export CUDA_MODULE_LOADING=LAZY
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R=/tmp/trb-results
PY=${PY:-${PY310:-python3}}
# This rig's TensorRT has no cuBLAS/cuDNN: no tactics from them; level 0 keeps builds short.
# The builder optimization level exists from TensorRT 8.6 (8.5, JetPack 5's, refuses it).
if "$PY" -c 'import sys, tensorrt as t; sys.exit(tuple(map(int, t.__version__.split(".")[:2])) < (8, 6))' 2>/dev/null; then
  OPTL=(--opt-level 0); FAST_OPT=(--set 'models.*.options.opt_level=0')
else
  OPTL=(); FAST_OPT=()
fi
FAST=(--set 'models.*.options.tactics=none' "${FAST_OPT[@]}" --output "$R")
trb() { "$PY" -m trt_ray_bench.cli "$@"; }
step() { echo; echo "=== $*  ($(date +%T))"; }

tests() {
  step "GPU tests"
  "$PY" -m pytest -q -p no:cacheprovider tests/gpu tests/telemetry tests/control -k "not jetson" 2>&1 | tee "$OUT/pytest.log"
}
fidelity() {
  step "fidelity vs a bare CUDA-event loop"
  "$PY" benchmarks/trt_fidelity.py --tactics none "${OPTL[@]}" --rounds 5 2>&1 | tee "$OUT/fidelity.log"
}
nvml() { step "NVML overhead"; "$PY" benchmarks/nvml_overhead.py 2>&1 | tee "$OUT/nvml.log"; }
together() {
  step "five engines alone vs together, MPS off then on"
  trb run examples/02_alone_together_gpu/alone_together_gpu.yaml "${FAST[@]}" 2>&1 | tee "$OUT/together.log"
  trb run examples/02_alone_together_gpu/alone_together_gpu.yaml "${FAST[@]}" --set mps=true 2>&1 | tee -a "$OUT/together.log"
}
gap() {
  step "gap study, clocks default then locked"
  trb run examples/03_idle_gap_slowdown/gap_study.yaml "${FAST[@]}" 2>&1 | tee "$OUT/gap.log"
  trb run examples/03_idle_gap_slowdown/gap_study.yaml "${FAST[@]}" --set clocks=max 2>&1 | tee -a "$OUT/gap.log"
}
pitfalls() {
  step "timing pitfalls"
  trb run examples/06_timing_pitfalls/timing_pitfalls.yaml "${FAST[@]}" 2>&1 | tee "$OUT/pitfalls.log"
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
  trb run examples/04_inference_vs_validation/inference_vs_validation.yaml "${FAST[@]}" --set 'models.*.backend=tensorrt' \
      --set data.synthetic=${SEED002_IMAGES:-100} --set timing.iterations=${SEED002_ITERS:-200} --set timing.warmup=50 \
      ${SEED002_SET:-} 2>&1 | tee -a "$OUT/seed002.log"
  trb compare "$R/inference_vs_validation" --by mode 2>&1 | tee "$OUT/seed002.md"
  tar -czf "$OUT/seed002.tgz" -C "$R" inference_vs_validation
}
models() {
  # the exports carried in .device/mchunks (benchmarks/gpu_models.py): used as is, no Ultralytics here
  mkdir -p /tmp/trbcache/models && cp -n /tmp/stage/files/*.onnx /tmp/trbcache/models/ 2>/dev/null; ls /tmp/trbcache/models
}
gputests() {
  step "GPU tests on cuda-python, then the same on pycuda (issue 12)"
  "$PY" -m pytest -q -s -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_cudapython.log"
  pycudatests
}
pycudatests() {
  # the whole run on pycuda, and how the interpreter ended: pycuda aborts at exit when a
  # context is still pushed ("context stack was not empty"), after the tests have run
  step "GPU tests on pycuda, and the interpreter's exit status"
  TRB_CUDA=pycuda "$PY" -m pytest -q -s -p no:cacheprovider tests/gpu > "$OUT/gpu_pycuda.log" 2>&1
  echo "pytest exit $?" | tee -a "$OUT/gpu_pycuda.log"; tail -5 "$OUT/gpu_pycuda.log"
}
fidelity2() {
  step "fidelity on each CUDA binding"
  local b m models=()
  for m in ${FID_MODELS:-}; do models+=(--model "$m"); done   # default: the benchmark's own models
  for b in cuda-python pycuda; do
    "$PY" benchmarks/trt_fidelity.py --tactics none "${OPTL[@]}" --rounds ${ROUNDS:-7} --cuda $b "${models[@]}" 2>&1 \
        | tee "$OUT/fidelity-$b.log"
  done
}
precision() {
  step "FP32 / FP16 (flag, converted) / INT8 (Q/DQ, calibrator), yolov8n 640"
  "$PY" benchmarks/trt_precision.py --tactics none "${OPTL[@]}" --images 8 --model ${PREC_MODEL:-yolov8n:640} ${PREC_ARGS:-} 2>&1 \
      | tee "$OUT/precision.md"
}
noise() {
  # Issue 14: does one run's interval describe the noise between runs? 10 process-isolated
  # repeats of yolov8n-cls FP16 (a fresh actor, the engine loaded again, each); < 90 s cached.
  step "noise between runs: ${NOISE_REPEATS:-10} process-isolated repeats of yolov8n-cls fp16"
  "$PY" benchmarks/noise_estimate.py --backend tensorrt --precision fp16 --tactics none "${OPTL[@]}" \
      --repeats ${NOISE_REPEATS:-10} --iterations ${NOISE_ITERS:-1000} --output "$R" 2>&1 | tee "$OUT/noise.md"
}
signals() {
  # Issue 13, item 8, once on the real GPU: a run holding {gpu_mhz: 1500} sent SIGHUP (an
  # ssh that drops), then one sent SIGKILL (the OOM killer), then a default-clocks run.
  step "a run stopped by SIGHUP, then one killed by SIGKILL, holding the SM clock at 1500 MHz"
  local log="$OUT/signals.log" sig p n0
  q() { nvidia-smi --query-gpu=index,clocks.sm,clocks.max.sm,pstate --format=csv,noheader | head -1; }
  for sig in HUP KILL; do
    n0=$(cat "$log" 2>/dev/null | grep -c "^loaded"); echo "--- SIG$sig; before: $(q)" | tee -a "$log"
    setsid "$PY" -m trt_ray_bench.cli run examples/02_alone_together_gpu/alone_together_gpu.yaml "${FAST[@]}" --set schedule=alone \
        --set 'models=[{arch: yolov8n, task: classify, imgsz: 224, backend: tensorrt, precision: fp16, options: {tactics: none, opt_level: 0}}]' \
        --set 'clocks={gpu_mhz: 1500}' --set timing.iterations=null --set timing.duration_s=60 >> "$log" 2>&1 &
    p=$!
    for _ in $(seq 60); do [ "$(grep -c "^loaded" "$log")" -gt "$n0" ] && break; sleep 1; done; sleep 3  # measuring: controls applied, model loaded
    echo "while measuring: $(q)" | tee -a "$log"
    kill -$sig $p; wait $p; echo "exit $?" | tee -a "$log"
    sleep 6
    echo "after: $(q); journal: $(ls /var/tmp/trt_ray_bench/journal 2>/dev/null | tr '\n' ' '); ray:: left: $(pgrep -fc 'ray::' || true)" | tee -a "$log"
  done
  trb doctor 2>&1 | grep -E "journal" | tee -a "$log"
  trb run examples/02_alone_together_gpu/alone_together_gpu.yaml "${FAST[@]}" --set schedule=alone --set timing.iterations=50 \
      --set 'models=[{arch: yolov8n, task: classify, imgsz: 224, backend: tensorrt, precision: fp16, options: {tactics: none, opt_level: 0}}]' \
      2>&1 | grep -E "restored|wrote|clocks" | tee -a "$log"
  echo "after the next run: $(q); journal: $(ls /var/tmp/trt_ray_bench/journal 2>/dev/null | tr '\n' ' ')" | tee -a "$log"
}
skew() {
  step "start skew of 5 actors on this machine's cores"
  "$PY" benchmarks/start_skew.py --threads 1 --repeats 10 2>&1 | tee "$OUT/skew.log"
}
tables() {
  step "tables"
  {
    for r in "$R"/gpu_alone_together/*/; do echo "## $r"; trb compare "$r"; done
    trb compare "$R/gap_study" --all --baseline gap-0
    trb compare "$R/timing_pitfalls" --baseline warm-sync
    "$PY" benchmarks/gpu_tables.py "$R"
  } 2>&1 | tee "$OUT/tables.md"
  tar -czf "$OUT/results.tgz" -C "$R" . && ls -la "$OUT"
}

measure() {
  # wall time and peak RSS (the child's ru_maxrss) of one command, into $OUT/measure.log
  "$PY" - "$@" <<'PYEOF' 2>&1 | tee -a "$OUT/measure.log"
import os, resource, subprocess, sys, time
t = time.perf_counter(); rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t; kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{' '.join(sys.argv[1:])}: exit {rc}, {wall:.1f} s, peak RSS {kb / 1000:.0f} MB")
PYEOF
}
longrun() {
  # The five tasks alone then together for LONG_S seconds a phase: samples, Parquet size, and
  # the time and peak RSS of compare and report on the run.
  step "five tasks, ${LONG_S:-30} s a phase, alone then together; compare and report measured"
  local spec=examples/02_alone_together_gpu/alone_together_gpu.yaml
  trb run "$spec" "${FAST[@]}" --set timing.iterations=null --set timing.duration_s=${LONG_S:-30} \
      --set name=gpu_long 2>&1 | tail -25 | tee "$OUT/longrun.log"
  local tree="$R/gpu_long"
  "$PY" -c "import sys; from trt_ray_bench import results; r = results.load(sys.argv[1]); print('samples', r.n_samples, 'runs rows', len(r.runs))" "$tree" 2>&1 | tee -a "$OUT/longrun.log"
  du -sb "$tree" | tee -a "$OUT/longrun.log"
  measure "$PY" -m trt_ray_bench.cli compare "$tree" --all
  measure "$PY" -m trt_ray_bench.cli report "$tree" --out /tmp/long.html
  trb compare "$tree" --all 2>&1 | tee -a "$OUT/longrun.log"
}

multigpu() {
  # Issue 13, item 4, on the 2-GPU machine (kind nvidia-h200-x2), after `models`:
  #   bash .device/chunks/cNN/setup.sh && bash benchmarks/gpu_proof.sh models multigpu
  # One node started by `trb node start --head` (2 GPUs visible: --num-gpus=2, trb_slot 2),
  # a 4-point sweep on it two points at a time, nvidia-smi logging both GPUs meanwhile
  # (100 ms), then benchmarks/multigpu_check.py: each point's GPU, window, NVML telemetry
  # beside nvidia-smi's log of each GPU, and the verdicts (exit 1 on a FAIL).
  step "multi-GPU: one node, two GPUs, two points at a time"
  local spec=${MULTIGPU_SPEC:-benchmarks/multigpu_sweep.yaml} port=${MULTIGPU_PORT:-6379} smi=${SMI:-nvidia-smi}
  local root=${MULTIGPU_RESULTS:-/tmp/trb-results/multigpu} log="$OUT/multigpu.log" smipid rc
  if ! command -v ray >/dev/null; then   # the bundle unpacks wheels, without their console scripts
    mkdir -p /tmp/trb-bin && printf '#!/bin/sh\nexec "%s" -m ray.scripts.scripts "$@"\n' "$PY" > /tmp/trb-bin/ray
    chmod +x /tmp/trb-bin/ray && export PATH=/tmp/trb-bin:$PATH
  fi
  "$smi" --query-gpu=index,uuid,name,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$log"
  rm -rf "$root"
  CUDA_VISIBLE_DEVICES=0 trb node start --head --port "$port" --dry-run 2>&1 | tee -a "$log"  # the issue's case: 1 GPU
  trb node start --head --node-ip 127.0.0.1 --port "$port" --name multigpu ${MULTIGPU_NODE_ARGS:-} 2>&1 | tee -a "$log"
  "$smi" --query-gpu=timestamp,index,uuid,utilization.gpu,clocks.sm --format=csv -lms 100 > "$OUT/smi.csv" 2>&1 &
  smipid=$!
  trb sweep "$spec" --address "127.0.0.1:$port" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  sleep 0.5; kill "$smipid" 2>/dev/null; wait "$smipid" 2>/dev/null
  ${MULTIGPU_STOP:-ray stop --force} >/dev/null 2>&1   # the lent machine runs nothing else
  echo "sweep exit $rc; nvidia-smi log: $(wc -l < "$OUT/smi.csv") lines" | tee -a "$log"
  "$PY" benchmarks/multigpu_check.py "$root" "$OUT/smi.csv" 2>&1 | tee "$OUT/multigpu.md"
  "$smi" --query-gpu=index,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee -a "$OUT/multigpu.md"  # after the sweep, idle
  tar -czf "$OUT/multigpu.tgz" -C "$(dirname "$root")" "$(basename "$root")"
}

# ------------------------------------------------------------------ issue 14 (engineer L)
# The whole issue-14 proof of these stages: about 4 minutes on an H200 (engine builds of cls
# 224 fp16 ~25 s, once, cached in /tmp/trbcache):  bash benchmarks/gpu_proof.sh gapattr events warmbarrier
CLS1='{arch: yolov8n, task: classify, imgsz: 224, backend: tensorrt, precision: fp16, options: {tactics: none, opt_level: 0}}'
gapattr() {
  # Seed 001 attributed (~100 s): back to back; 20 ms gap slept / spun / + poke / + dummy;
  # clocks default and max: the study's sweep (one command), then `trb compare --by gap`.
  step "seed 001 gap attribution: one sweep, clocks default and max"
  "$PY" - "$R" <<'PYEOF'
import sys, yaml
d = yaml.safe_load(open("examples/03_idle_gap_slowdown/gap_attribution.yaml"))
d["output"] = sys.argv[1]
for m in d["base"]["models"]:
    m.setdefault("options", {}).update(tactics="none", opt_level=0)   # FAST, as the other stages
d["base"]["timing"]["iterations"] = int(__import__("os").environ.get("GAPATTR_ITERS", "300"))
yaml.safe_dump(d, open("/tmp/gapattr.yaml", "w"), sort_keys=False)
PYEOF
  rm -rf "$R/gap_attribution"
  trb sweep /tmp/gapattr.yaml 2>&1 | tee "$OUT/gapattr.log"
  trb compare "$R/gap_attribution" --by gap 2>&1 | tee "$OUT/gapattr.md"
  trb compare "$R/gap_attribution" --by gap --format csv > "$OUT/gapattr.csv" 2>&1
}
events() {
  # Events recycled (~EVENTS_S + 20 s): one cls engine timed for EVENTS_S seconds back to
  # back (the issue asks 10 minutes; the device budget does not allow it: EVENTS_S=600 does
  # it), the model actor's RSS and GPU memory read 5 s after the measurement starts and 5 s
  # before it ends: flat, and the run's inference count far past the old 1024 reserve.
  local secs=${EVENTS_S:-90} log="$OUT/events.log" p pid
  step "a ${secs} s duration run: process RSS and GPU memory at start and end"
  : > "$log"
  mem() {
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null | while IFS=', ' read -r a m _; do
      echo "$1: pid $a gpu ${m} MiB rss $(ps -o rss= -p "$a" 2>/dev/null | tr -d ' ') KiB"; done | tee -a "$log"
  }
  trb run examples/02_alone_together_gpu/alone_together_gpu.yaml "${FAST[@]}" --set schedule=alone --set name=events \
      --set "models=[$CLS1]" --set timing.iterations=null --set timing.duration_s="$secs" \
      --set timing.warmup=50 >> "$log" 2>&1 &
  p=$!
  # "loaded" is printed once the model process holds its engine (the plan's "repeat 0"
  # line comes before anything ran: memory read then shows no process)
  for _ in $(seq 120); do grep -q "^loaded" "$log" 2>/dev/null && break; sleep 1; done
  sleep 5; mem start
  sleep $((secs - 10)); mem end
  wait $p; echo "exit $?" | tee -a "$log"
  "$PY" - "$R/events" <<'PYEOF' 2>&1 | tee -a "$log"
import sys
from trt_ray_bench import results
r = results.load(sys.argv[1]).latest()
row = r.runs.iloc[0]
print(f"inferences {int(row.n_total)} in {row.duration_s:g} s (the old reserve: 1024); gpu p50 {row.gpu_p50_ms:.4f} ms, "
      f"host p50 {row.p50_ms:.4f} ms")
s = r.samples[~r.samples.warmup].sort_values("t_start_ns")
q = len(s) // 4
print(f"host p50 first quarter {s.host_ms[:q].median():.4f} ms, last quarter {s.host_ms[-q:].median():.4f} ms")
PYEOF
}
warmbarrier() {
  # Together warm-up at the barrier (~40 s): model a warms up by count, model b for 1.2 s
  # (the quickstart's wait), so a waits ~1.2 s at the barrier. keep_warm true (a runs
  # untimed inferences while waiting) vs false (a idles): a's first 20 measured GPU times
  # vs the rest of its together run.
  step "together: keep_warm at the barrier, on vs off"
  local k
  for k in true false; do
    trb run examples/02_alone_together_gpu/alone_together_gpu.yaml "${FAST[@]}" --set schedule=together --set name=warmbarrier_$k \
        --set "models=[{name: a, arch: yolov8n, task: classify, imgsz: 224, backend: tensorrt, precision: fp16, options: {tactics: none, opt_level: 0}}, {name: b, arch: yolov8n, task: classify, imgsz: 224, backend: tensorrt, precision: fp16, options: {tactics: none, opt_level: 0}, timing: {warmup_s: 1.2}}]" \
        --set timing.iterations=500 --set timing.warmup=20 --set timing.keep_warm=$k --set repeats=3 2>&1 | tee -a "$OUT/warmbarrier.log"
  done
  "$PY" - "$R" <<'PYEOF' 2>&1 | tee "$OUT/warmbarrier.md"
import sys
import numpy as np
from trt_ray_bench import results
print("| keep_warm | repeat | barrier warm-ups | a: first 20 GPU p50 ms | a: rest GPU p50 ms | first/rest |")
print("|---|---|---|---|---|---|")
for k in ("true", "false"):
    r = results.load(f"{sys.argv[1]}/warmbarrier_{k}").latest()
    for rep, g in r.samples[(r.samples.model == "a") & ~r.samples.warmup].groupby("repeat"):
        g = g.sort_values("t_start_ns")
        first, rest = g.gpu_ms[:20].median(), g.gpu_ms[20:].median()
        row = r.runs[(r.runs.model == "a") & (r.runs.repeat == rep)].iloc[0]
        print(f"| {k} | {rep} | {int(row.barrier_warmup_n or 0)} | {first:.4f} | {rest:.4f} | {first / rest:.2f} |")
PYEOF
}

# ------------------------------------------------------------------ JetPack 5's stack, energy, cameras
pytest85() { "$PY" -m pytest -v --tb=short -p no:cacheprovider "$@"; }
gputests85() {
  # the GPU suite alone (TensorRT, energy, DLA refusal, cooldown), each test timed; on 8.5 its
  # builds take minutes: GPUTESTS (paths) and GPUTESTS_K (a -k expression) pick the tests of
  # one 10-minute call (e.g. GPUTESTS=tests/gpu/test_tensorrt.py GPUTESTS_K="int8 or fp16"),
  # each call's log kept apart. On 8.6 and an H100 the whole suite took 411 s (2026-12-06).
  step "tests/gpu ${GPUTESTS:-} ${GPUTESTS_K:-} ${TRB_CUDA:-}"
  local n files; n=$(ls "$OUT"/pytest-gpu*.log 2>/dev/null | wc -l)
  read -ra files <<< "${GPUTESTS:-tests/gpu}"
  # -v: a call cut at its 10 minutes still shows each test's outcome so far, and the one running;
  # -s: the figures the tests print (agreement, build times)
  pytest85 -s "${files[@]}" ${GPUTESTS_K:+-k "$GPUTESTS_K"} --durations=15 -rs 2>&1 | tee "$OUT/pytest-gpu$n.log"
  echo "pytest exit ${PIPESTATUS[0]}" | tee -a "$OUT/pytest-gpu$n.log"   # on pycuda: how the interpreter ended
}
# JetPack 5's proof as one run in the background, which goes on between device calls where
# the machine lets it, and is resumed step by step where it does not. Each call:
#   bash benchmarks/gpu_proof.sh plan85      (the first after `bash .device38/chunks/c10/setup.sh` and `models`)
# waits up to PLAN_WAIT seconds (default 540), then copies the logs so far to $OUT.
P85=/tmp/plan85
plan85() {
  local t0; t0=$(date +%s); mkdir -p $P85
  if [ -f $P85/pid ] && kill -0 "$(cat $P85/pid)" 2>/dev/null; then
    echo "the runner of the last call is still running: $(cat $P85/pid)"
  elif [ ! -f $P85/done ]; then
    echo "starting the runner (steps done: $(cd $P85 && ls -- *.ok 2>/dev/null | tr '\n' ' '))"
    OUT=$P85 setsid nohup bash "$0" plan85steps >> $P85/runner.log 2>&1 < /dev/null &
    echo $! > $P85/pid
  fi
  while [ ! -f $P85/done ] && [ $(( $(date +%s) - t0 )) -lt "${PLAN_WAIT:-540}" ]; do sleep 5; done
  cp -r $P85/. "$OUT"/ 2>/dev/null
  echo "--- runner log, last lines ($(date +%T)); CUDA cache: $(du -sh /tmp/cuda-cache 2>/dev/null | cut -f1)"
  tail -40 $P85/runner.log
}
plan85steps() {
  local s
  for s in ${PLAN85:-gputests85 pycuda85 fidelity85 precision85}; do
    [ -f $P85/$s.ok ] && continue
    step "plan step $s"; "$s"; touch $P85/$s.ok
    echo "step $s ended; CUDA cache: $(du -sh /tmp/cuda-cache 2>/dev/null | cut -f1)"
  done
  touch $P85/done
}
# The suite in the order that proves most per build, after gputests85 has built the 64-px
# classifier's and 96-px detector's FP16 engines (its DLA, energy and alone/together tests;
# stop it there): the tests of those engines on each binding and fidelity on them, then the
# tests that build engines of their own, all at once, and the precision table:
#   PLAN85="cached85 pycuda85 fidelity85 par85 precision85" bash benchmarks/gpu_proof.sh plan85
# (builds one at a time: TensorRT 8.5's builds started together made no progress, see par85)
CACHED85='not int8 and not fp16_engine and not dynamic and not own_size and not pipeline'
cached85() { GPUTESTS=tests/gpu/test_tensorrt.py GPUTESTS_K="$CACHED85" gputests85; }
pycuda85() { TRB_CUDA=pycuda cached85; }
fidelity85() { FID_MODELS="yolov8n-cls:64 yolov8n:96" ROUNDS=5 fidelity2; }
par85() {
  # the TensorRT tests that build engines of their own, one after the other, those not yet
  # run on 8.5 first: on an H100 (2026-12-06) six of these tests, a 96-px FP32 build and the
  # precision table's five builds started at once (eleven builds) finished none in 14 minutes;
  # one at a time (2026-12-07) own_size took 219 s, dynamic 229 s, builder_flag 492 s (two builds;
  # the precision tests' FP32 reference is now the ONNX on ONNX Runtime, no engine: one build each;
  # through_the_calibrator 479 s, mixed_precision 355 s, timing_cache 230 s, 2026-12-07)
  local k
  for k in ${PAR85_K:-keeps_the_class_scores through_the_calibrator mixed_precision timing_cache builder_flag dynamic own_size after_pycuda}; do
    pytest85 tests/gpu/test_tensorrt.py -s -k "$k" --durations=5 > "$OUT/par85-$k.log" 2>&1
    grep -E "(PASSED|FAILED|SKIPPED|ERROR)|(passed|failed|skipped) in " "$OUT/par85-$k.log"
  done
}
# one build at a time, all five sharing one timing cache: the later rows reuse the timings of
# the earlier ones (on an H100, 2026-12-07: 126, 365, 170, 322 and 325 s, 23 minutes in all)
precision85() { PREC_MODEL=yolov8n:320 PREC_ARGS="--timing-cache /tmp/trbcache/precision85.cache" precision; }
# INT8 by the calibrator on the 320-px LSUV detector: the head rule with the min-max and the
# entropy calibrator, Ultralytics' layers only, no rule (INT8V: other variants); needs scipy in
# the bundle (gpu_extra_wheels.sh). On an H100 with 8.6 (2026-12-07) a build took ~2.5 min; on
# 8.5 the GPU test of it (GPUTESTS_K=keeps_the_class_scores gputests85) took 472 s and the
# precision table's row (PREC_MODEL=yolov8n:320 PREC_ARGS="--rows int8-calibrator" precision) 415 s.
int8head() {
  step "INT8 by the calibrator, variants ${INT8V:-rule-minmax,rule-entropy,ultralytics-minmax,none-minmax}"
  "$PY" benchmarks/trt_int8_head.py --model yolov8n:320 --work /tmp/int8head \
      --variants "${INT8V:-rule-minmax,rule-entropy,ultralytics-minmax,none-minmax}" 2>&1 | tee -a "$OUT/int8head.md"
}
energy() {
  # The five tasks alone and together, 5 s a phase: with a 3-s idle baseline and a cooldown
  # to COOL_C (default 60 °C) before each phase, then without either; each row's energy (NVML's
  # counter) against the integral of NVML's power readings over the same window. An H100 was at
  # 43-50 °C before each phase (2026-12-06): COOL_C=45 makes the cooldown wait.
  step "energy per inference, five tasks alone and together, with and without an idle baseline"
  local spec=examples/02_alone_together_gpu/alone_together_gpu.yaml
  rm -rf "$R/gpu_energy_idle" "$R/gpu_energy"
  trb run "$spec" "${FAST[@]}" --set name=gpu_energy_idle --set timing.iterations=null --set timing.duration_s=5 \
      --set telemetry.idle_s=3 --set "timing.cooldown={temp_c: ${COOL_C:-60}, timeout_s: 60}" 2>&1 | tee "$OUT/energy.log"
  trb run "$spec" "${FAST[@]}" --set name=gpu_energy --set timing.iterations=null --set timing.duration_s=5 \
      2>&1 | tee -a "$OUT/energy.log"
  { for t in gpu_energy_idle gpu_energy; do
      echo "## $t"; "$PY" benchmarks/energy_check.py "$R/$t"
      "$PY" -c "import sys; from trt_ray_bench import results; r = results.load(sys.argv[1], samples=False); print(r.runs[['model', 'phase', 'cooldown_s', 'cooldown_temp_c', 'oc_events']].to_string(index=False))" "$R/$t"
      trb compare "$R/$t"
    done; } 2>&1 | tee "$OUT/energy.md"
}
precisionrun() {
  # examples/07_precision (FP32, FP16 by flag and converted, INT8 by calibrator and Q/DQ), then
  # the comparison grouped by network
  step "precision example, then trb compare --by precision"
  rm -rf "$R/precision"
  trb run examples/07_precision/precision.yaml "${FAST[@]}" --set timing.iterations=${PREC_ITERS:-300} \
      --set telemetry.interval_s=0.02 2>&1 | tee "$OUT/precisionrun.log"
  { trb compare "$R/precision" --by precision; trb compare "$R/precision" --baseline fp32; } 2>&1 | tee "$OUT/precision-by.md"
}
# Engines built in parallel (one process each, same cache and options as the runs: trb engine
# build is a run's path), then waited for: the five tasks' FP16 engines (keep-up, energy), the
# precision example's five variants of the 640-px detector, or both at once.
EB=(--tactics none)
exports() { ls "$@" 2>/dev/null | grep -Ev -- '-(fp16|int8|fp32)-'; }   # not the converted copies beside them
five_builds() {
  local m=/tmp/trbcache/models f
  for f in $(exports "$m"/yolov8n-cls-224x224-b1-*.onnx "$m"/yolov8n-640x640-b1-*.onnx "$m"/yolov8n-pose-640x640-b1-*.onnx \
                     "$m"/yolov8n-seg-640x640-b1-*.onnx "$m"/yolov8n-obb-1024x1024-b1-*.onnx); do
    trb engine build "$f" --precision fp16 "${EB[@]}" "${OPTL[@]}" >> "$OUT/prebuild.log" 2>&1 &
  done
}
precision_builds() {
  local f o=("${EB[@]}" "${OPTL[@]}")
  f=$(exports /tmp/trbcache/models/yolov8n-640x640-b1-*.onnx | head -1)
  trb engine build "$f" --precision fp32 "${o[@]}" >> "$OUT/prebuild.log" 2>&1 &
  trb engine build "$f" --precision fp16 --typing weak --convert false "${o[@]}" >> "$OUT/prebuild.log" 2>&1 &
  trb engine build "$f" --precision fp16 --convert true "${o[@]}" >> "$OUT/prebuild.log" 2>&1 &
  trb engine build "$f" --precision int8 --typing weak --convert false --calib-images examples/07_precision/calib \
      --calib-cache yolov8n-640-int8.calib "${o[@]}" >> "$OUT/prebuild.log" 2>&1 &
  trb engine build "$f" --precision int8 --convert true --calib-images examples/07_precision/calib "${o[@]}" \
      >> "$OUT/prebuild.log" 2>&1 &
}
built() { wait; cat "$OUT/prebuild.log"; }
engines5() { step "the five tasks' FP16 engines, built in parallel"; five_builds; built; }
enginesprec() { step "the precision example's engines, built in parallel"; precision_builds; built; }
prebuild() { step "every engine of keep-up, energy and precision, built in parallel"; five_builds; precision_builds; built; }
keepup() {
  # five cameras at 30 / 60 / 120 FPS alone and together (KEEPUP_ARGS="--rates '' " for the search only)
  step "keep up: five tasks at 30, 60, 120 FPS alone and together${KEEPUP_ARGS:+ ($KEEPUP_ARGS)}"
  local opts=(--option tactics=none); [ ${#OPTL[@]} -gt 0 ] && opts+=(--option opt_level=0)
  # shellcheck disable=SC2086
  "$PY" benchmarks/keep_up_gpu.py "${opts[@]}" --output "$R/keep_up" ${KEEPUP_ARGS:---no-search} 2>&1 | tee -a "$OUT/keepup.md"
}
keepsearch() { KEEPUP_ARGS="--rates=" keepup; }

# The studies' GPU specs on JetPack 5's TensorRT (8.5.3.1): the five tasks alone and together,
# the idle-gap study, the timing pitfalls and five cameras at 30 FPS, every model in FP32
# (PREC85=fp16: the specs' own precision). On an H100 (2026-12-07) an 8.5 build of a 320-px
# detector took ~2 min in FP32 and ~6 min in FP16, so FP32 fits one device session. Engines are
# built first, one at a time (8.5's builds started together made no progress), with the options
# the runs use, so that each run finds them cached: the classifier, then the two studies of it
# alone (studies85cls), then the other four and the two studies of all five (studies85five).
# Needs the five exports (.device38/mchunks2) beside the tests' (.device38/mchunks).
#   PLAN85=studies85 bash benchmarks/gpu_proof.sh models plan85
S85=/tmp/trbcache/models
build85() {   # EXPORT...: each built in $PREC85, one at a time
  local f t0
  # the three 640-px networks share their backbone and neck: one timing cache lets the later
  # builds reuse the earlier ones' timings (the cache is not part of the engine's key)
  for f in $(exports "$@"); do
    t0=$(date +%s)
    trb engine build "$f" --precision "${PREC85:-fp32}" "${EB[@]}" "${OPTL[@]}" \
        --timing-cache /tmp/trbcache/studies85.cache >> "$OUT/studies85.log" 2>&1
    echo "built $(basename "$f") in ${PREC85:-fp32}: exit $?, $(( $(date +%s) - t0 )) s" | tee -a "$OUT/studies85.log"
  done
}
run85() {   # SPEC NAME COMPARE-ARGS...: one study (RUN85: more --set), then its table
  local spec=$1 name=$2 log="$OUT/studies85.log"; shift 2
  step "$name ($spec), every model in ${PREC85:-fp32}" | tee -a "$log"
  trb run "$spec" "${FAST[@]}" --set "models.*.precision=${PREC85:-fp32}" --set name="$name" "${RUN85[@]}" \
      >> "$log" 2>&1
  echo "trb run exit $?" | tee -a "$log"
  trb compare "$R/$name" "$@" 2>&1 | tee -a "$log"
  tar -czf "$OUT/$name.tgz" -C "$R" "$name" 2>/dev/null
}
studies85cls() {
  build85 "$S85"/yolov8n-cls-224x224-b1-*.onnx
  RUN85=(); run85 examples/03_idle_gap_slowdown/gap_study.yaml study85_gap --baseline gap-0
  run85 examples/06_timing_pitfalls/timing_pitfalls.yaml study85_pitfalls --baseline warm-sync
}
studies85five() {
  build85 "$S85"/yolov8n-640x640-b1-*.onnx "$S85"/yolov8n-pose-640x640-b1-*.onnx "$S85"/yolov8n-seg-640x640-b1-*.onnx \
          "$S85"/yolov8n-obb-1024x1024-b1-*.onnx
  RUN85=(--set timing.iterations=300); run85 examples/02_alone_together_gpu/alone_together_gpu.yaml study85_alone_together
  RUN85=(--set timing.iterations=200); run85 examples/12_keep_up/keep_up_gpu.yaml study85_keep_up
}
studies85() { studies85cls; studies85five; }

stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(tests fidelity nvml together gap pitfalls pipeline seed002 skew tables)
for s in "${stages[@]}"; do "$s"; done

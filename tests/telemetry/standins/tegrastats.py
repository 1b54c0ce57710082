"""Stand-in for NVIDIA's ``tegrastats``, which exists only on Jetson boards.

Installed by the tests as an executable named ``tegrastats`` first on PATH (its ``#!``
line rewritten to the test's Python). Like the real one it takes ``--interval MS``,
prints one line per interval, flushed, until it is stopped, and a SIGTERM ends it. The
lines are real recorded ones, replayed in a loop.

Configuration, for a run where the environment of the caller does not reach it (a Ray
actor) it reads files beside itself; the environment overrides them:

- lines: ``TRB_STANDIN_LINES`` or ``tegrastats.lines`` beside it (one line each; ``#``
  comments skipped), else a built-in AGX Orin line
- ``TRB_STANDIN_RECORD`` or ``tegrastats.calls`` beside it: one JSON object per call
  appended, ``{"argv": [...], "pid": N}``
- ``TRB_STANDIN_EXIT_AFTER=N``: after N lines, print a message and exit with
  ``TRB_STANDIN_EXIT_CODE`` (default 3): a tegrastats that dies during a run
- ``TRB_STANDIN_IGNORE_TERM=1``: ignore SIGTERM (a tegrastats that must be killed)
"""

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ORIN = ("05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) "
        "CPU [14%@2188,5%@2112,8%@2035,14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,"
        "10%@1036] EMC_FREQ 3%@2133 GR3D_FREQ 0%@[0,0] NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off "
        "VIC 36%@115 OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@52.562C soc2@48.437C "
        "soc0@49.093C tj@52.562C soc1@49.656C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW "
        "VIN_SYS_5V0 4707mW/4707mW")


def main(argv):
    record = os.environ.get("TRB_STANDIN_RECORD") or os.path.join(HERE, "tegrastats.calls")
    try:
        with open(record, "a") as f:
            f.write(json.dumps({"argv": argv, "pid": os.getpid()}) + "\n")
    except OSError:
        pass
    interval_ms = 1000
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--interval" and args and args[0].isdigit():
            interval_ms = int(args.pop(0))
        else:
            print(f"tegrastats: unknown option {a}", file=sys.stderr)
            return 1
    if os.environ.get("TRB_STANDIN_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = os.environ.get("TRB_STANDIN_LINES") or os.path.join(HERE, "tegrastats.lines")
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        lines = []
    lines = lines or [ORIN]
    exit_after = int(os.environ.get("TRB_STANDIN_EXIT_AFTER", "0"))
    step = interval_ms / 1000.0
    t0 = time.monotonic()
    n = 0
    while True:
        n += 1
        time.sleep(max(0.0, t0 + n * step - time.monotonic()))
        sys.stdout.write(lines[(n - 1) % len(lines)] + "\n")
        sys.stdout.flush()
        if exit_after and n >= exit_after:
            print("tegrastats: stand-in told to exit", file=sys.stderr, flush=True)
            return int(os.environ.get("TRB_STANDIN_EXIT_CODE", "3"))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)

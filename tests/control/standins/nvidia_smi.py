"""Stand-in for ``nvidia-smi``, a hardware-only command, for the tests of
``trt_ray_bench.control``: NVIDIA H100 SXMs (graphics clocks 1980 down to 345 MHz in
steps of 15 with each of its memory clocks, 2619 and 1593 MHz, as a real one lists them
with driver 580), one unless ``config.json`` says ``gpus: N``, answering in the real
tool's formats and exit statuses, for the arguments trt_ray_bench uses: ``-i N`` picks
one GPU (a query without it answers for every GPU, one line each, as the real one does);
``-lms N`` logs every N ms until stopped (the multi-GPU proof's log), a GPU showing 100 %
utilization and its boost clock while a model process pinned to it (its UUID in
CUDA_VISIBLE_DEVICES) runs its timed loop.

Everything lives next to this file, so it behaves the same wherever it is run from (a
Ray worker included): ``state.json`` the locks in force on GPU 0 (``state-<i>.json`` on
GPU i: each GPU's clocks are its own), ``config.json`` what to simulate (``gpus``,
``no_permission``, ``lmc_supported``, ``reset_fails``), ``calls.jsonl`` one line per call
with its argv, time and CUDA_VISIBLE_DEVICES (shared with the MPS stand-in, so the order
across both tools is known). Each GPU's UUID is made from this folder's path, so two
fake machines never share one (their GPU locks neither).
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUS = "00000000:18:00.0"
NAME = "NVIDIA H100 80GB HBM3"
BUSES = ("00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0")
GRAPHICS = list(range(1980, 344, -15))
MEMORY = 2619
MEMORY_CLOCKS = (2619, 1593)
IDLE_SM = 345
NO_PERMISSION = (f"The current user does not have permission to change clocks for GPU {BUS}.\n"
                 "Terminating early due to previous errors.")


def load(name, default):
    p = HERE / name
    return json.loads(p.read_text()) if p.exists() else default


def uuid(i):
    h = hashlib.sha256(f"{HERE}:{i}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def state_file(i):
    return HERE / ("state.json" if i == 0 else f"state-{i}.json")


def busy(i):
    """Whether a model process pinned to GPU i (CUDA_VISIBLE_DEVICES=<its UUID>) is in its
    timed loop (Ray titles it ``ray::ModelActor.run_phase``): the load this GPU would show
    (100 % on GPU 0, 63 % on GPU 1: two GPUs busy at once still log apart)."""
    want = f"CUDA_VISIBLE_DEVICES={uuid(i)}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "cmdline").read_bytes().startswith(b"ray::ModelActor.run_phase") and \
                    want in (d / "environ").read_bytes().split(b"\0"):
                return True
        except OSError:
            continue
    return False


def stamp(t):
    """nvidia-smi's timestamp: local time, milliseconds."""
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


UNITS = {"clocks.sm": ("clocks.current.sm", " MHz"), "clocks.current.sm": ("clocks.current.sm", " MHz"),
         "clocks.mem": ("clocks.current.memory", " MHz"), "utilization.gpu": ("utilization.gpu", " %")}


def main(args):
    if not os.environ.get("TRB_STANDIN_NOLOG"):  # the tests' own questions are not recorded
        with open(HERE / "calls.jsonl", "a") as f:
            f.write(json.dumps({"tool": "nvidia-smi", "argv": args, "t": time.time(),
                                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    cfg = load("config.json", {})
    n_gpus = int(cfg.get("gpus", 1))
    gpus = list(range(n_gpus))
    if "-i" in args:
        k = args.index("-i")
        want = args[k + 1]
        gpus = [i for i in gpus if want in (str(i), uuid(i), BUSES[i])]
        if not gpus:
            print("No devices were found")
            return 6
        args = args[:k] + args[k + 2:]
    period = None
    if "-lms" in args:  # the log: every N ms until stopped, header once
        k = args.index("-lms")
        period = int(args[k + 1]) / 1000
        args = args[:k] + args[k + 2:]
    if args and args[0].startswith("--query-gpu="):
        fmt = next((a.split("=", 1)[1].split(",") for a in args[1:] if a.startswith("--format=")), None)
        if not fmt or fmt[0] != "csv" or not set(fmt[1:]) <= {"noheader", "nounits"}:
            print("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.")
            return 2
        fields = args[0].split("=", 1)[1].split(",")
        units = "nounits" not in fmt
        lines = [] if "noheader" in fmt else [", ".join(
            (UNITS[f][0] + f" [{UNITS[f][1].strip()}]" if units else UNITS[f][0]) if f in UNITS else f for f in fields)]
        while True:
            for i in gpus:
                state = load(state_file(i).name, {"locked_gpu": None, "locked_mem": None})
                load_now = busy(i) if {"utilization.gpu", "clocks.sm", "clocks.current.sm"} & set(fields) else False
                sm = state["locked_gpu"][1] if state["locked_gpu"] else (GRAPHICS[0] if load_now else IDLE_SM)
                mem = state["locked_mem"][1] if state["locked_mem"] else MEMORY
                values = {
                    "timestamp": stamp(time.time()),
                    "index": i, "uuid": uuid(i), "pci.bus_id": BUSES[i], "utilization.gpu": (100 - 37 * i) if load_now else 0,
                    "name": NAME, "clocks.sm": sm, "clocks.current.sm": sm, "clocks.mem": mem,
                    "clocks.max.sm": GRAPHICS[0], "clocks.max.mem": MEMORY,
                    "clocks.applications.graphics": GRAPHICS[0], "clocks.applications.memory": MEMORY,
                    "persistence_mode": "Enabled",
                }
                out = []
                for field in fields:
                    if field not in values:
                        print(f'Field "{field}" is not a valid field to query.')
                        return 2
                    out.append(str(values[field]) + (UNITS[field][1] if units and field in UNITS else ""))
                lines.append(", ".join(out))
            print("\n".join(lines), flush=True)
            lines = []
            if period is None:
                return 0
            time.sleep(period)
    if len(gpus) != 1:  # the tool would act on every GPU: trb never asks that
        print("trb stand-in: a command without -i on a machine of several GPUs")
        return 2
    gpu = gpus[0]
    bus = BUSES[gpu]
    state = load(state_file(gpu).name, {"locked_gpu": None, "locked_mem": None})

    def save():
        state_file(gpu).write_text(json.dumps(state))

    if args == ["-q", "-d", "SUPPORTED_CLOCKS"]:
        print("\n==============NVSMI LOG==============\n")
        print(f"{'Timestamp':<42}: Mon Jan 13 10:00:00 2025")
        print(f"{'Driver Version':<42}: 550.90.07")
        print(f"{'CUDA Version':<42}: 12.4\n")
        print(f"{'Attached GPUs':<42}: 1")
        print(f"GPU {bus}")
        print("    Supported Clocks")
        for mem in MEMORY_CLOCKS:
            print(f"        {'Memory':<34}: {mem} MHz")
            for g in GRAPHICS:
                print(f"            {'Graphics':<30}: {g} MHz")
        print()
        return 0
    if args[:1] in (["-lgc"], ["-lmc"], ["-rgc"], ["-rmc"]):
        if cfg.get("no_permission"):
            print(NO_PERMISSION.replace(BUS, bus))
            return 4
        flag = args[0]
        if flag == "-lmc" and not cfg.get("lmc_supported", True):
            print(f"Setting locked Memory clocks is not supported for GPU {bus}.")
            print("Treating as warning and moving on.")
            print("All done.")
            return 0
        if flag in ("-rgc", "-rmc") and cfg.get("reset_delay_s"):  # a busy driver takes its time
            time.sleep(float(cfg["reset_delay_s"]))
        if flag in ("-rgc", "-rmc") and cfg.get("reset_fails"):
            print(f"Unable to reset the locked clocks for GPU {bus}: Unknown Error")
            return 15
        if flag in ("-lgc", "-lmc"):
            lo, hi = (int(v) for v in args[1].split(","))
            state["locked_gpu" if flag == "-lgc" else "locked_mem"] = [lo, hi]
            what, key = ("GPU", "gpuClk") if flag == "-lgc" else ("Memory", "memClk")
            print(f'{what} clocks set to "({key}Min {lo}, {key}Max {hi})" for GPU {bus}')
        else:
            state["locked_gpu" if flag == "-rgc" else "locked_mem"] = None
        save()
        print("All done.")
        return 0
    print("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

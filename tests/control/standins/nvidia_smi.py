"""Stand-in for ``nvidia-smi``, a hardware-only command, for the tests of
``trt_ray_bench.control``: one NVIDIA H100 SXM (graphics clocks 1980 down to 345 MHz in
steps of 15 with each of its memory clocks, 2619 and 1593 MHz, as a real one lists them
with driver 580) answering in the real tool's formats and exit statuses, for the
arguments trt_ray_bench uses.

Everything lives next to this file, so it behaves the same wherever it is run from (a
Ray worker included): ``state.json`` the locks in force, ``config.json`` what to
simulate (``no_permission``, ``lmc_supported``, ``reset_fails``), ``calls.jsonl`` one line
per call (shared with the MPS stand-in, so the order across both tools is known).
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUS = "00000000:18:00.0"
NAME = "NVIDIA H100 80GB HBM3"
GRAPHICS = list(range(1980, 344, -15))
MEMORY = 2619
MEMORY_CLOCKS = (2619, 1593)
IDLE_SM = 345
NO_PERMISSION = (f"The current user does not have permission to change clocks for GPU {BUS}.\n"
                 "Terminating early due to previous errors.")


def load(name, default):
    p = HERE / name
    return json.loads(p.read_text()) if p.exists() else default


def main(args):
    with open(HERE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"tool": "nvidia-smi", "argv": args}) + "\n")
    cfg = load("config.json", {})
    state = load("state.json", {"locked_gpu": None, "locked_mem": None})
    if "-i" in args:
        k = args.index("-i")
        if args[k + 1] != "0":
            print("No devices were found")
            return 6
        args = args[:k] + args[k + 2:]

    def save():
        (HERE / "state.json").write_text(json.dumps(state))

    if args and args[0].startswith("--query-gpu="):
        if "--format=csv,noheader,nounits" not in args:
            print("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.")
            return 2
        sm = state["locked_gpu"][1] if state["locked_gpu"] else IDLE_SM
        mem = state["locked_mem"][1] if state["locked_mem"] else MEMORY
        values = {
            "name": NAME, "clocks.sm": sm, "clocks.current.sm": sm, "clocks.mem": mem,
            "clocks.max.sm": GRAPHICS[0], "clocks.max.mem": MEMORY,
            "clocks.applications.graphics": GRAPHICS[0], "clocks.applications.memory": MEMORY,
            "persistence_mode": "Enabled",
        }
        out = []
        for field in args[0].split("=", 1)[1].split(","):
            if field not in values:
                print(f'Field "{field}" is not a valid field to query.')
                return 2
            out.append(str(values[field]))
        print(", ".join(out))
        return 0
    if args == ["-q", "-d", "SUPPORTED_CLOCKS"]:
        print("\n==============NVSMI LOG==============\n")
        print(f"{'Timestamp':<42}: Mon Jan 13 10:00:00 2025")
        print(f"{'Driver Version':<42}: 550.90.07")
        print(f"{'CUDA Version':<42}: 12.4\n")
        print(f"{'Attached GPUs':<42}: 1")
        print(f"GPU {BUS}")
        print("    Supported Clocks")
        for mem in MEMORY_CLOCKS:
            print(f"        {'Memory':<34}: {mem} MHz")
            for g in GRAPHICS:
                print(f"            {'Graphics':<30}: {g} MHz")
        print()
        return 0
    if args[:1] in (["-lgc"], ["-lmc"], ["-rgc"], ["-rmc"]):
        if cfg.get("no_permission"):
            print(NO_PERMISSION)
            return 4
        flag = args[0]
        if flag == "-lmc" and not cfg.get("lmc_supported", True):
            print(f"Setting locked Memory clocks is not supported for GPU {BUS}.")
            print("Treating as warning and moving on.")
            print("All done.")
            return 0
        if flag in ("-rgc", "-rmc") and cfg.get("reset_fails"):
            print(f"Unable to reset the locked clocks for GPU {BUS}: Unknown Error")
            return 15
        if flag in ("-lgc", "-lmc"):
            lo, hi = (int(v) for v in args[1].split(","))
            state["locked_gpu" if flag == "-lgc" else "locked_mem"] = [lo, hi]
            what, key = ("GPU", "gpuClk") if flag == "-lgc" else ("Memory", "memClk")
            print(f'{what} clocks set to "({key}Min {lo}, {key}Max {hi})" for GPU {BUS}')
        else:
            state["locked_gpu" if flag == "-rgc" else "locked_mem"] = None
        save()
        print("All done.")
        return 0
    print("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

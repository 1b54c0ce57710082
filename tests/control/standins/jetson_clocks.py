"""Stand-in for NVIDIA's ``jetson_clocks``, a hardware-only command, for the tests of
``trt_ray_bench.control``: the stand-in AGX Orin of ``jetson_board.py``.

``--show`` prints the board in the format a real AGX Orin prints (Jetson Linux 35; one
line per CPU in the tool's own order, the DLA/PVA/FAN lines as recorded on a real board);
``--store FILE`` writes the settings as the real tool does (``path:value`` lines),
``--restore FILE`` puts them back, no argument pins CPU, GPU and EMC at the mode's
maximum and the fan at full speed. ``config.json``: ``jetson_clocks_fails`` makes the
no-argument call fail after pinning the GPU (a half-applied state).
"""

import re
import sys

import jetson_board as board

DLA_PVA = """DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA0_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
DLA1_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA1_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
PVA0_VPS0: Online=1 MinFreq=0 MaxFreq=1152000000 CurrentFreq=1152000000
PVA0_AXI:  Online=1 MinFreq=0 MaxFreq=832000000 CurrentFreq=832000000"""


def show():
    st = board.state()
    online = [i for i in range(board.N_CPUS) if st["online"][i]]
    print("SOC family:tegra234  Machine:Jetson AGX Orin")
    print(f"Online CPUs: {online[0]}-{online[-1]}")
    for i in sorted(range(board.N_CPUS), key=str):  # cpu0, cpu1, cpu10, cpu11, cpu2, ...
        print(f"cpu{i}: Online={st['online'][i]} Governor=schedutil MinFreq={st['cpu_min'][i]} "
              f"MaxFreq={st['cpu_max']} CurrentFreq={st['cpu_cur'][i]} IdleStates: WFI=1 c7=1 ")
    print(f"GPU MinFreq={board.gpu('min_freq')} MaxFreq={board.gpu('max_freq')} CurrentFreq={board.gpu('cur_freq')}")
    if st["mode"] != 0:
        print(f"Active GPU TPCs: {4 if st['mode'] in (1, 2) else 8}")
    print(f"EMC MinFreq=204000000 MaxFreq={st['emc_max']} CurrentFreq={st['emc_cur']} FreqOverride={st['emc_lock']}")
    print(DLA_PVA)
    print(f"FAN Dynamic Speed control=active hwmon2_pwm1={st['fan']}")
    print(f"NV Power Mode: {board.modes()[st['mode']]['name']}")


def store(path):
    st = board.state()
    lines = [f"{board.CPU_SYSFS.format(i)}:{st['cpu_min'][i]}" for i in range(board.N_CPUS) if st["online"][i]]
    lines += [f"{board.GPU_SYSFS}/{f}:{board.gpu(f)}" for f in ("min_freq", "max_freq")]
    lines += [f"{board.EMC_LOCK}:{st['emc_lock']}", f"{board.FAN_PWM}:{st['fan']}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def restore(path):
    st = board.state()
    for line in open(path).read().splitlines():
        name, value = line.rsplit(":", 1)
        value = int(value)
        if name.startswith(board.GPU_SYSFS):
            board.gpu(name.rsplit("/", 1)[1], value)
        elif name == board.EMC_LOCK:
            st["emc_lock"] = value
            st["emc_cur"] = min(2133000000, st["emc_max"]) if not value else st["emc_max"]
        elif name == board.FAN_PWM:
            st["fan"] = value
        else:
            cpu = int(re.search(r"/cpu(\d+)/", name).group(1))
            st["cpu_min"][cpu] = st["cpu_cur"][cpu] = value
    board.gpu("cur_freq", board.gpu("min_freq"))
    board.save(st)


def pin():
    hi = board.gpu("max_freq")
    board.gpu("min_freq", hi)
    board.gpu("cur_freq", hi)
    if board.config().get("jetson_clocks_fails"):
        print("Error: failed to set EMC clock: /sys/kernel/debug/bpmp/debug/clk/emc/rate: Invalid argument")
        return 1
    st = board.state()
    for i in range(board.N_CPUS):
        if st["online"][i]:
            st["cpu_min"][i] = st["cpu_cur"][i] = st["cpu_max"]
    st.update(emc_cur=st["emc_max"], emc_lock=1, fan=255)
    board.save(st)
    return 0


def main(args):
    board.log("jetson_clocks", args)
    if args == ["--show"]:
        show()
        return 0
    if len(args) == 2 and args[0] == "--store":
        store(args[1])
        return 0
    if len(args) == 2 and args[0] == "--restore":
        try:
            restore(args[1])
        except FileNotFoundError:
            print(f"Error: {args[1]} file not found!")
            return 1
        return 0
    if not args:
        return pin()
    print(f"Unknown option {args[0]}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Stand-in for NVIDIA's ``nvpmodel``, a hardware-only command, for the tests of
``trt_ray_bench.control``: the stand-in AGX Orin of ``jetson_board.py``, its modes read
from the fake board's ``/etc/nvpmodel.conf``.

``-q`` answers as the real tool (``NV Power Mode: MODE_50W`` then the id); ``-m N`` sets
the mode's caps on the fake board. ``config.json`` ``reboot_modes``: modes that need a
reboot once the GPU was used, answered with the real tool's recorded question; stdin's
end (what trb gives it) declines, as on a real board, and nothing changes.
"""

import sys

import jetson_board as board

REBOOT = ("NVPM WARN: Golden image context is already created\n"
          "NVPM WARN: Reboot required for changing to this power mode: {mode}\n"
          "NVPM WARN: DO YOU WANT TO REBOOT NOW? enter YES/yes to confirm:")


def main(args):
    stdin = sys.stdin.read() if args[:1] == ["-m"] else None
    board.log("nvpmodel", args, stdin)
    st = board.state()
    modes = board.modes()
    if args == ["-q"]:
        print(f"NV Power Mode: {modes[st['mode']]['name']}")
        print(st["mode"])
        return 0
    if len(args) == 2 and args[0] == "-m" and args[1].isdigit():
        mode = int(args[1])
        if mode not in modes:
            print(f"NVPM ERROR: Invalid power mode ID {mode}")  # trb refuses before asking
            return 255
        if mode in board.config().get("reboot_modes", []) and mode != st["mode"]:
            print(REBOOT.format(mode=mode))
            answer = stdin.strip()
            if answer in ("YES", "yes"):
                raise SystemExit("the stand-in never reboots: trb must never answer yes")
            print("NVPM ERROR: bad input!" if not answer else "NVPM ERROR: optMask is 1, no request for power mode")
            return 255
        board.set_mode(mode)
        return 0
    print("Usage: nvpmodel [-m <mode>] [-q] [-f <conf>] [-p --verbose]")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

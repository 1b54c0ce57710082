"""Stand-in for ``sudo``, for the tests of ``trt_ray_bench.control`` (trb runs Jetson
tools through ``sudo -n`` when it is not root; the tests force that with ``TRB_SUDO=always``).

``-n CMD...`` runs CMD with this process's stdin; ``-n -l CMD...`` says whether CMD is
allowed, as sudo does (its full path and arguments, exit 0). ``config.json`` ``sudo``:
``nopasswd`` (default, a NOPASSWD rule) or ``password`` (no such rule: every call fails as
a real ``sudo -n`` does, "sudo: a password is required", exit 1). Without ``-n`` it fails
as sudo does without a terminal. Every call is appended to ``calls.jsonl`` with its stdin.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(args):
    stdin = sys.stdin.read()
    with open(HERE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"tool": "sudo", "argv": args, "stdin": stdin}) + "\n")
    cfg = json.loads((HERE / "config.json").read_text()) if (HERE / "config.json").exists() else {}
    options = []
    while args and args[0].startswith("-"):
        options.append(args.pop(0))
    if "-n" not in options:
        print("sudo: a terminal is required to read the password; either use the -S option to read from "
              "standard input or configure an askpass helper", file=sys.stderr)
        return 1
    if cfg.get("sudo", "nopasswd") == "password":
        print("sudo: a password is required", file=sys.stderr)
        return 1
    path = shutil.which(args[0]) if args else None
    if path is None:
        print(f"sudo: {args[0] if args else ''}: command not found", file=sys.stderr)
        return 1
    if "-l" in options:
        print(" ".join([path, *args[1:]]))
        return 0
    return subprocess.run([path, *args[1:]], input=stdin, text=True).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

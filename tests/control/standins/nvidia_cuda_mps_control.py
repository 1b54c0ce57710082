"""Stand-in for ``nvidia-cuda-mps-control``, a hardware-only command, for the tests of
``trt_ray_bench.control``.

``-d`` starts a real background process whose argv reads ``nvidia-cuda-mps-control ... -d``
as the real daemon's does (so a /proc scan sees it), with this call's environment (so its
``CUDA_MPS_PIPE_DIRECTORY`` is in its /proc environ, as the real one's); with no argument
it reads commands from stdin, and ``quit`` stops the daemon of the caller's pipe folder
(one daemon per pipe folder, as the real tool: ``mps_daemon.pid`` for the default one,
``mps_daemon-<hash>.pid`` for another). Every call (argv, stdin, the MPS and CUDA
variables) is appended to ``calls.jsonl`` next to this file, shared with the nvidia-smi
stand-in; ``config.json`` ``mps_start_fails`` makes ``-d`` fail.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIPE_DIR = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
PIDFILE = HERE / ("mps_daemon.pid" if not PIPE_DIR or os.path.normpath(PIPE_DIR) == "/tmp/nvidia-mps" else
                  f"mps_daemon-{hashlib.sha256(os.path.normpath(PIPE_DIR).encode()).hexdigest()[:12]}.pid")
ENV = ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY", "CUDA_VISIBLE_DEVICES")
DAEMON = "import time; time.sleep(300)"  # the test ends it; it never outlives 5 minutes


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def running():
    return PIDFILE.exists() and alive(int(PIDFILE.read_text()))


def main(args):
    stdin = "" if args else sys.stdin.read()
    with open(HERE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"tool": "nvidia-cuda-mps-control", "argv": args, "stdin": stdin, "t": time.time(),
                            "env": {k: os.environ[k] for k in ENV if k in os.environ}}) + "\n")
    cfg = json.loads((HERE / "config.json").read_text()) if (HERE / "config.json").exists() else {}
    if args == ["-d"]:
        if cfg.get("mps_start_fails"):
            print("Failed to start MPS control daemon: could not create /var/log/nvidia-mps (Permission denied)")
            return 1
        if running():
            print("An instance of this daemon is already running")
            return 1
        p = subprocess.Popen(["nvidia-cuda-mps-control", "-c", DAEMON, "-d"], executable=sys.executable,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        PIDFILE.write_text(str(p.pid))
        return 0
    if args:
        print(f"Unknown option {args[0]}")
        return 1
    for command in stdin.splitlines():
        if command.strip() == "quit":
            if not running():
                print("Cannot find MPS control daemon process")
                return 1
            pid = int(PIDFILE.read_text())
            os.kill(pid, signal.SIGTERM)
            t_end = time.monotonic() + 5
            while alive(pid) and time.monotonic() < t_end:
                time.sleep(0.02)
            PIDFILE.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

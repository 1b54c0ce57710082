"""Stand-in for ``nvidia-smi`` on a machine whose NVIDIA driver does not answer (the kernel
module not loaded: a kernel update without the driver's DKMS module, a driver being
reinstalled), for the tests of ``trt_ray_bench.control``: whatever it is asked, it prints
what the real tool prints there and exits 9 (man nvidia-smi, RETURN VALUE: "NVIDIA driver
is not loaded"). Each call's argv goes to ``calls.jsonl`` beside this file, as the other
stand-in's do, so a test sees that nothing but the question was asked.
"""

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MESSAGE = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
           "NVIDIA driver is installed and running.")


def main(args):
    if not os.environ.get("TRB_STANDIN_NOLOG"):
        with open(HERE / "calls.jsonl", "a") as f:
            f.write(json.dumps({"tool": "nvidia-smi", "argv": args, "t": time.time(),
                                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    print(MESSAGE)
    print()
    return 9


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""trt_ray_bench: inference latency of several models, alone and together, measured honestly."""

import os as _os

__version__ = "0.1.0"

# Ultralytics (the optional export and pipeline extra) pip-installs what it misses at run
# time, e.g. a HEIF plugin the first time an image does not decode: never in the middle of
# a benchmark on a lab board. A user who wants it sets YOLO_AUTOINSTALL=True.
_os.environ.setdefault("YOLO_AUTOINSTALL", "False")

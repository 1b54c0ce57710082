"""trt_ray_bench: inference latency of several models, alone and together, measured honestly."""

__version__ = "0.1.0"

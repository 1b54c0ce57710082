"""Export, here (with Ultralytics), every ONNX model the GPU proof needs into a cache
folder that can be carried to a GPU machine without Ultralytics or torch: a cached
export is used as is where Ultralytics is not installed.

    TRB_CACHE_DIR=.device/trbcache python benchmarks/gpu_models.py
Then carry .device/trbcache/models in pieces under 60 MB (see gpu_proof.sh)."""

from trt_ray_bench.models import export_onnx, yaml_name

NEEDED = [
    # (arch, task, imgsz, batch, dynamic): the tests' small models, the five tasks at
    # their usual sizes, the dynamic-batch test model, the 320-px detector (INT8 head, precision table)
    ("yolov8n", "classify", 64, 1, False), ("yolov8n", "detect", 96, 1, False),
    ("yolov8n", "classify", 64, 4, True), ("yolov8n", "detect", 320, 1, False),
    ("yolov8n", "classify", 224, 1, False), ("yolov8n", "detect", 640, 1, False),
    ("yolov8n", "pose", 640, 1, False), ("yolov8n", "segment", 640, 1, False), ("yolov8n", "obb", 1024, 1, False),
]

if __name__ == "__main__":
    for arch, task, size, batch, dyn in NEEDED:
        path, cached = export_onnx(yaml_name(arch, task), task, (size, size), batch, dynamic=dyn)
        print(f"{path}  ({path.stat().st_size / 2**20:.1f} MB{', cached' if cached else ''})")

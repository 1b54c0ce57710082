#!/bin/bash
# What `gpu_proof.sh pipeline seed002` needs on the lent H100 beyond the bundle of
# ../shared/device/make_bundle.sh: cp310 wheels of torch 2.11 (CUDA 13; its CUDA libraries
# are borrowed from the machine's own torch, see torch310 in gpu_proof.sh), torchvision,
# OpenCV (headless), Ultralytics and their pure-Python dependencies, plus any files given
# (the exported ONNX models), packed into carry-sized chunks:
#   bash benchmarks/gpu_pipeline_wheels.sh ~/.cache/trt_ray_bench/models/*.onnx
#   then per chunk: carry [".device/xchunks/cNN"], run python3 .device/xchunks/cNN/recv.py
#   after the bundle's chunks and before its setup.sh (which unzips every wheel received).
# ~590 MB of wheels (torch is 506 MB): 11 chunks, plus the models'. Repack the bundle at the
# same size (make_bundle.sh packs 60 MB, which no longer fits beside this working tree):
#   python3 ../shared/device/pack.py .device/chunks .device/bundle/*.zst .device/bundle/*.tar \
#       .device/bundle/python310.prefix .device/bundle/wheels/*.whl --with ../shared/device/setup.sh --chunk-mb 54
set -euo pipefail
W=.device/pipeline-wheels
mkdir -p "$W"
PLAT=(--only-binary=:all: --python-version 3.10 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_27_x86_64)
python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$W" torch==2.11.0 torchvision==0.26.0 \
    ultralytics ultralytics-thop opencv-python-headless matplotlib contourpy cycler fonttools kiwisolver \
    pyparsing networkx jinja2 markupsafe fsspec "setuptools<82" exceptiongroup tomli httpx httpcore h11 anyio sniffio
# a call carries the working tree too (3.4 MB, 6.4 MB at its largest): 54 MB chunks fit beside it
python3 ../shared/device/pack.py .device/xchunks "$W"/*.whl "$@" --chunk-mb 54 | sed "s#$PWD/##"

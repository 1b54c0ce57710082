#!/bin/bash
# Extra wheels for the lent H200 beyond ../shared/device/make_bundle.sh's bundle, for its
# CPython 3.10 / TensorRT 8.6 stack (the default) or, with PYV=3.8, its JetPack 5 stack
# (CPython 3.8 / TensorRT 8.5.3.1, bundle in .device38):
# pycuda (built here), its pure-Python/cp310 dependencies, and onnx (the project converts
# ONNX models there), then the bundle AND these wheels repacked into 54 MB chunks.
#   bash benchmarks/gpu_extra_wheels.sh          # from the project root; ~4 min the first time
#   PYV=3.8 bash benchmarks/gpu_extra_wheels.sh  # the same into .device38/chunks
#   then per chunk: carry [".device/chunks/cNN"], run python3 .device/chunks/cNN/recv.py,
#   and on the same machine: bash .device/chunks/cNN/setup.sh (it unzips every wheel received).
# Why build here: pycuda has no wheel on the package index (sdist only; it compiles against
# the CUDA toolkit), and the GPU machine has neither a compiler toolchain nor network.
# The wheel is built against this machine's CUDA toolkit headers (CUDA 13.0) and links only
# libcuda.so.1 (the driver, present on the GPU machine); CURAND is left out so that it needs
# no libcurand of a particular CUDA version. pycuda.driver (memory, copies, streams, events,
# module_from_buffer for PTX/cubin) works without nvcc; SourceModule and gpuarray kernels
# compile CUDA C at run time and need nvcc, which the GPU machine lacks.
set -euo pipefail
PYV=${PYV:-3.10}; V=${PYV/./}
ROOT="$(pwd)"
if [ "$PYV" = 3.8 ]; then
  D="$ROOT/.device38"; NUMPY="numpy==1.24.4"   # the bundle's numpy, for the build headers
  [ -f "$D/bundle/trt85.tar.zst" ] || PYV=3.8 TRTV=8.5.3.1 OUT=.device38 bash ../shared/device/make_bundle.sh scipy matplotlib pillow tqdm onnx
else
  D="$ROOT/.device"; NUMPY="numpy<2.3"
  # CPython 3.10 + TRT 8.6 + wheels, with the project's core dependencies the bundle lacks
  [ -f "$D/bundle/trt86.tar.zst" ] || bash ../shared/device/make_bundle.sh scipy matplotlib pillow tqdm onnx
fi
W="$D/extra-wheels"; T="$D/pycuda-build"
mkdir -p "$W" "$T"
PYX="$(pyenv prefix "$(pyenv versions --bare | grep "^${PYV//./\\.}\." | head -1)")/bin/python$PYV"
CUDA_ROOT="${CUDA_ROOT:-$(readlink -f /usr/local/cuda)}"        # here: /usr/local/cuda-13.0
[ -f "$CUDA_ROOT/include/cuda.h" ] || { echo "no cuda.h under $CUDA_ROOT (set CUDA_ROOT)"; exit 1; }
PYCUDA=2026.1

# 1. pycuda wheel (skipped when already built).
if ! ls "$W"/pycuda-$PYCUDA-cp$V-*.whl >/dev/null 2>&1; then
  # The toolkit here has no lib64/stubs/libcuda.so and there is no driver: make a link-time
  # stand-in for libcuda.so.1 exporting every cu* function cuda.h declares (all API versions).
  # It is never shipped; at run time the GPU machine's real libcuda.so.1 is loaded.
  mkdir -p "$T/stubs"
  printf '#include <cuda.h>\n#include <cudaProfiler.h>\n' |
    gcc -E -P -I"$CUDA_ROOT/include" -D__CUDA_API_VERSION_INTERNAL=0 -x c - |
    grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | sed 's/[[:space:](]//g' | sort -u |
    awk '{print "int "$1"(void){return 999;}"}' > "$T/stubs/libcuda_stub.c"
  gcc -shared -fPIC -o "$T/stubs/libcuda.so.1" "$T/stubs/libcuda_stub.c" -Wl,-soname,libcuda.so.1
  ln -sf libcuda.so.1 "$T/stubs/libcuda.so"
  # The sdist only (--no-binary pycuda, not :all:, which would also build numpy from source
  # just to read pycuda's metadata).
  python3 -m pip download -q --no-deps --no-binary pycuda -d "$T" pycuda==$PYCUDA
  rm -rf "$T/src" "$T/venv"; mkdir "$T/src"; tar -xzf "$T/pycuda-$PYCUDA.tar.gz" -C "$T/src"
  # Throwaway venv of the bundle's Python; numpy as the bundle's for the build headers.
  rm -rf "$T/venv"; "$PYX" -m venv "$T/venv"
  "$T/venv/bin/pip" install -q -U "$NUMPY" setuptools wheel
  (cd "$T/src/pycuda-$PYCUDA" &&
   "$T/venv/bin/python" configure.py --cuda-root="$CUDA_ROOT" --cudadrv-lib-dir="$T/stubs" \
       --no-cuda-enable-curand &&
   "$T/venv/bin/pip" wheel -q . --no-build-isolation --no-deps -w "$W")
  # Expect NEEDED: libcuda.so.1, libstdc++.so.6, libgcc_s.so.1, libc.so.6 (no libcudart).
  (cd "$T" && rm -rf chk && mkdir chk && cd chk && python3 -m zipfile -e "$W"/pycuda-$PYCUDA-cp$V-*.whl . &&
   readelf -d pycuda/_driver*.so | grep NEEDED)
fi

# 2. Runtime dependencies of pycuda (pytools, platformdirs, mako, ...) and onnx (protobuf,
#    ml_dtypes, ...), pinned to the versions the bundle already has (numpy 2.2.x, protobuf,
#    typing_extensions), so that the union never holds two versions of one package.
ls "$D"/bundle/wheels/*.whl | xargs -n1 basename | awk -F- '{print $1"=="$2}' > "$T/bundle-constraints.txt"
rm -rf "$T/dl"
python3 -m pip download -q -c "$T/bundle-constraints.txt" --only-binary=:all: --python-version $PYV \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$T/dl" pytools platformdirs mako onnx pillow scipy matplotlib tqdm exceptiongroup tomli 2>&1 | grep -v "is ignored" || true
# (pillow, scipy, matplotlib, tqdm: core dependencies of the project a bundle may lack; exceptiongroup and tomli:
#  pytest's own on Python 3.10, which the bundle's pip download left out)
for f in "$T"/dl/*.whl; do [ -f "$D/bundle/wheels/$(basename "$f")" ] || cp "$f" "$W/"; done
dups=$(ls "$D"/bundle/wheels/*.whl "$W"/*.whl | xargs -n1 basename | awk -F- '{print tolower($1)}' | sort | uniq -d)
[ -z "$dups" ] || { echo "two versions of: $dups (in $W and $D/bundle/wheels)"; exit 1; }

# 3. Repack everything at 54 MB a chunk (a call carries 64 MiB, the working tree included).
rm -rf "$D/chunks"
python3 ../shared/device/pack.py "$D/chunks" "$D"/bundle/*.zst "$D"/bundle/*.tar "$D"/bundle/python$V.prefix $(ls "$D"/bundle/bundle.env 2>/dev/null) \
    "$D"/bundle/wheels/*.whl "$W"/*.whl --with ../shared/device/setup.sh --chunk-mb 54 | sed "s#$ROOT/##"

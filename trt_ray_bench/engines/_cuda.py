"""A tiny CUDA facade: the dozen runtime calls the GPU runners need, over cuda-python
(``cuda.bindings.runtime`` / ``cuda.cudart``) or pycuda (common on Jetson). Pointers and
streams are plain ints; errors raise ``CudaError``.

Which binding: ``TRB_CUDA=auto | cuda-python | pycuda`` (auto: cuda-python, then pycuda).
Both facades have the same methods; ``name`` says which one ran.

Threads: the runtime API (cuda-python) makes the device's primary context current in any
thread by itself; pycuda's driver API needs a current context in each thread that calls
it. A Ray actor is threaded (``load`` and the timed loop may run on different threads),
so the pycuda facade makes the primary context current once per thread in ``bind()``,
which the runner calls where a thread starts using it (prepare, reserve, gpu_times_ms,
close), never inside a timed inference."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Optional, Tuple

import numpy as np

from ..control.platform import on_jetson
from ..errors import MissingExtra, UserError, lazy_import

#: cudaDeviceSchedule* / CU_CTX_SCHED_* flags (same values), by the names the spec uses (``options.sync_wait``)
SCHEDULE = {"auto": 0, "spin": 1, "yield": 2, "block": 4}
#: why setting a wait mode failed (the runtime's and the driver's refusal alike)
_ACTIVE = "the primary context is already active with other flags (set options.sync_wait the same for every model)"
ENV = "TRB_CUDA"
BINDINGS = ("auto", "cuda-python", "pycuda")
_WHY = "running on the GPU"


class CudaError(RuntimeError):
    pass


def choice() -> str:
    """The binding ``TRB_CUDA`` asks for (auto when unset)."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in BINDINGS:
        raise UserError(ENV, f"{value!r}, expected one of {', '.join(BINDINGS)}")
    return value


def _cuda_python_runtime():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+), else ``cuda.cudart``."""
    try:
        return lazy_import("cuda.bindings.runtime", "tensorrt", _WHY)
    except MissingExtra:
        pass
    try:
        return lazy_import("cuda.cudart", "tensorrt", _WHY)
    except MissingExtra:
        raise MissingExtra("cuda-python", "tensorrt", _WHY) from None


def _pycuda_driver():
    try:
        return lazy_import("pycuda.driver", "tensorrt", _WHY + " through pycuda")
    except MissingExtra:
        if choice() != "pycuda":
            raise
        # pycuda has no wheel: it compiles against the CUDA toolkit (nvcc, cuda.h) at install
        raise UserError("pycuda", f"not installed; {ENV}=pycuda needs it: pip install pycuda (it builds against "
                                  f"the CUDA toolkit: nvcc on PATH), or unset {ENV}") from None


def import_binding() -> str:
    """Import the binding ``load`` would use, without touching the GPU; its name.
    ``MissingExtra`` / ``BrokenExtra`` where it cannot be imported."""
    which = choice()
    if which == "pycuda":
        _pycuda_driver()
        return "pycuda"
    try:
        _cuda_python_runtime()
        return "cuda-python"
    except UserError as first:
        if which == "cuda-python":
            raise
        try:
            _pycuda_driver()
            return "pycuda"
        except MissingExtra:
            raise _missing(first) from None


def _missing(first: UserError) -> UserError:
    """Neither binding: cuda-python's error if it is installed but broken, else both named."""
    if not isinstance(first, MissingExtra):
        return first
    if on_jetson():  # the binding must match JetPack's CUDA: the jetson extra picks it by Python version
        return MissingExtra("cuda-python", "jetson", "running on the GPU",
                            "pip install 'trt_ray_bench[jetson]' on JetPack 6/7 (cuda-python of JetPack's CUDA); on "
                            "JetPack 5 'trt_ray_bench[pycuda]' (builds against JetPack's CUDA: "
                            "PATH=/usr/local/cuda/bin:$PATH)")
    return MissingExtra("cuda-python", "tensorrt", "running on the GPU (or install pycuda)")


def load(sync_wait: Optional[str] = "auto"):
    """The facade ``TRB_CUDA`` asks for. ``sync_wait`` sets how host threads wait for the
    GPU (None: leave it, e.g. for ``trb doctor``)."""
    which = choice()
    if which == "pycuda":
        return PyCuda(sync_wait)
    try:
        return CudaPython(sync_wait)
    except UserError as first:
        if which == "cuda-python":
            raise
        try:
            return PyCuda(sync_wait)
        except MissingExtra:
            raise _missing(first) from None


def _version(dists, module) -> str:
    from importlib import metadata

    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return str(getattr(module, "__version__", "") or "unknown")


def _cuda_version_text(v: int) -> str:
    """12090 -> "12.9" (CUDA's encoding: 1000 * major + 10 * minor); 0: no driver."""
    return f"{v // 1000}.{(v % 1000) // 10}" if v > 0 else "none"


class CudaPython:
    """cuda-python's runtime bindings: every call returns ``(err, *values)``."""

    name = "cuda-python"
    supports_graphs = True

    def __init__(self, sync_wait: Optional[str] = "auto"):
        self.rt = rt = _cuda_python_runtime()
        self.version = _version(("cuda-python", "cuda-bindings"), rt)
        self._pinned = []
        if sync_wait is not None:
            # How host threads wait for the GPU. The runtime refuses it where another user of
            # the driver API (pycuda) made the primary context current first: auto then keeps
            # the context's flags, as pycuda's facade does (_set_primary_flags).
            ret = rt.cudaSetDeviceFlags(SCHEDULE[sync_wait])
            if int(ret[0]) != 0:
                if SCHEDULE[sync_wait] != 0:
                    raise CudaError(f"cudaSetDeviceFlags({sync_wait}) returned {self._name(ret[0])}: {_ACTIVE}")
                rt.cudaGetLastError()  # the refusal is not left for a later call to report

    def _name(self, err) -> str:
        name = self.rt.cudaGetErrorString(err)[1]
        return name.decode() if isinstance(name, bytes) else str(name)

    def _ok(self, ret, what: str):
        if int(ret[0]) != 0:
            raise CudaError(f"{what}: {self._name(ret[0])}")
        return ret[1] if len(ret) == 2 else ret[1:]

    def bind(self) -> None:
        """Nothing to do: the runtime API binds the primary context in each thread itself."""

    # ------------------------------------------------------------- the machine
    def device_count(self) -> int:
        return int(self._ok(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def device_name(self, device: int = 0) -> str:
        props = self._ok(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        n = props.name
        return (n.decode() if isinstance(n, bytes) else str(n)).rstrip("\x00")

    def compute_capability(self, device: int = 0) -> Tuple[int, int]:
        attr = self.rt.cudaDeviceAttr
        major = self._ok(self.rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, device),
                         "cudaDeviceGetAttribute")
        minor = self._ok(self.rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, device),
                         "cudaDeviceGetAttribute")
        return int(major), int(minor)

    def runtime_version(self) -> str:
        return _cuda_version_text(int(self._ok(self.rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")))

    def driver_version(self) -> str:
        return _cuda_version_text(int(self._ok(self.rt.cudaDriverGetVersion(), "cudaDriverGetVersion")))

    # ------------------------------------------------------------- memory
    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def host_array(self, shape, dtype) -> np.ndarray:
        """Pinned host memory as a numpy array (honest H2D/D2H timing needs it)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(self._ok(self.rt.cudaMallocHost(max(1, nbytes)), "cudaMallocHost"))
        buf = (ctypes.c_byte * max(1, nbytes)).from_address(ptr)
        arr = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
        self._pinned.append(ptr)
        return arr

    def htod(self, dst: int, src: np.ndarray, stream: int) -> None:
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync")

    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None:
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync")

    def memset(self, ptr: int, value: int, nbytes: int, stream: int) -> None:
        """``cudaMemsetAsync`` on ``stream`` (the runners' poke: a tiny GPU operation)."""
        self._ok(self.rt.cudaMemsetAsync(ptr, value, nbytes, stream), "cudaMemsetAsync")

    # ------------------------------------------------------------- streams, events, graphs
    def stream(self) -> int:
        return int(self._ok(self.rt.cudaStreamCreateWithFlags(1), "cudaStreamCreate"))  # non-blocking

    def event(self):
        return self._ok(self.rt.cudaEventCreate(), "cudaEventCreate")

    def record(self, ev, stream: int) -> None:
        self.rt.cudaEventRecord(ev, stream)

    def elapsed_ms(self, a, b) -> float:
        self._ok(self.rt.cudaEventSynchronize(b), "cudaEventSynchronize")
        return float(self._ok(self.rt.cudaEventElapsedTime(a, b), "cudaEventElapsedTime"))

    def sync_stream(self, stream: int) -> None:
        self.rt.cudaStreamSynchronize(stream)

    def sync_device(self) -> None:
        self.rt.cudaDeviceSynchronize()

    def capture(self, stream: int, fn) -> object:
        """Capture what ``fn`` enqueues on ``stream`` into an instantiated CUDA graph."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._ok(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        fn()
        graph = self._ok(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        return self._ok(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph_exec, stream: int) -> None:
        self.rt.cudaGraphLaunch(graph_exec, stream)

    def close(self) -> None:
        for p in self._pinned:
            self.rt.cudaFreeHost(p)
        self._pinned = []


class PyCuda:
    """pycuda's driver API on the device's primary context (the one the CUDA runtime, and
    so TensorRT, uses), for boards where pycuda is what is installed."""

    name = "pycuda"
    supports_graphs = False  # pycuda has no stream capture

    def __init__(self, sync_wait: Optional[str] = "auto"):
        drv = _pycuda_driver()
        try:
            drv.init()
            dev = drv.Device(0)
            if sync_wait is not None:
                _set_primary_flags(0, SCHEDULE[sync_wait])
            self.ctx = dev.retain_primary_context()
        except drv.Error as exc:
            raise CudaError(f"pycuda: {exc}") from None
        import pycuda

        self.drv = drv
        if not _EXIT_HOOK:  # once per process; runs before pycuda's own cleanup (registered earlier)
            import atexit

            atexit.register(_pop_all_at_exit, drv)
            _EXIT_HOOK.append(True)
        self.version = getattr(pycuda, "VERSION_TEXT", "unknown")
        self._objs = {}
        self._local = threading.local()
        self.bind()

    def bind(self) -> None:
        """Make the primary context current in the calling thread, once per thread."""
        if not getattr(self._local, "bound", False):
            self.ctx.push()
            self._local.bound = True

    # ------------------------------------------------------------- the machine
    def device_count(self) -> int:
        return int(self.drv.Device.count())

    def device_name(self, device: int = 0) -> str:
        return self.drv.Device(device).name()

    def compute_capability(self, device: int = 0) -> Tuple[int, int]:
        major, minor = self.drv.Device(device).compute_capability()
        return int(major), int(minor)

    def runtime_version(self) -> str:
        """pycuda has no runtime API: the CUDA version it was built against."""
        v = self.drv.get_version()
        return f"{v[0]}.{v[1]} (pycuda's build)"

    def driver_version(self) -> str:
        return _cuda_version_text(int(self.drv.get_driver_version()))

    # ------------------------------------------------------------- memory
    def malloc(self, nbytes: int) -> int:
        a = self.drv.mem_alloc(max(1, nbytes))
        self._objs[int(a)] = a
        return int(a)

    def free(self, ptr: int) -> None:
        self._objs.pop(ptr, None)  # pycuda frees on release of its allocation object

    def host_array(self, shape, dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def _s(self, stream: int):
        return self._objs[("stream", stream)]

    def htod(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.drv.memcpy_htod_async(dst, src, self._s(stream))

    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.drv.memcpy_dtoh_async(dst, src, self._s(stream))

    def memset(self, ptr: int, value: int, nbytes: int, stream: int) -> None:
        self.drv.memset_d8_async(ptr, value, nbytes, self._s(stream))

    # ------------------------------------------------------------- streams, events
    def stream(self) -> int:
        s = self.drv.Stream(1)  # CU_STREAM_NON_BLOCKING, as cuda-python's
        self._objs[("stream", s.handle)] = s
        return s.handle

    def event(self):
        return self.drv.Event()

    def record(self, ev, stream: int) -> None:
        ev.record(self._s(stream))

    def elapsed_ms(self, a, b) -> float:
        b.synchronize()
        return float(a.time_till(b))

    def sync_stream(self, stream: int) -> None:
        self._s(stream).synchronize()

    def sync_device(self) -> None:
        self.drv.Context.synchronize()

    def capture(self, stream: int, fn):
        raise CudaError("CUDA graph capture needs cuda-python (pip install cuda-python; TRB_CUDA=cuda-python)")

    def launch(self, graph_exec, stream: int) -> None:  # pragma: no cover - capture refuses first
        raise CudaError("CUDA graph capture needs cuda-python")

    def close(self) -> None:
        self.bind()  # the allocations are released with this thread's context current
        self._objs.clear()
        if getattr(self._local, "bound", False):
            _pop_current(self.drv)
            self._local.bound = False


def _pop_current(drv) -> None:
    try:
        drv.Context.pop()
    except Exception:  # noqa: BLE001 - nothing current (popped elsewhere): nothing to undo
        pass


def _pop_all_at_exit(drv) -> None:
    """pycuda aborts the interpreter at exit ("the context stack was not empty upon module
    cleanup") when a pushed context is still current: pop what this thread still has."""
    for _ in range(64):
        try:
            if drv.Context.get_current() is None:
                return
        except Exception:  # noqa: BLE001
            return
        _pop_current(drv)


_EXIT_HOOK = []


def _set_primary_flags(device: int, flags: int) -> None:
    """``cuDevicePrimaryCtxSetFlags`` (pycuda does not wrap it): how host threads wait for
    the GPU, set on the primary context before it is retained. A driver that refuses
    because the context is already active (drivers before CUDA 11) keeps its flags; only
    a mode other than auto makes that an error."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise CudaError(f"libcuda.so.1: {exc}") from None
    fn = getattr(lib, "cuDevicePrimaryCtxSetFlags_v2", None) or lib.cuDevicePrimaryCtxSetFlags
    dev = ctypes.c_int()
    if lib.cuDeviceGet(ctypes.byref(dev), device) != 0:
        raise CudaError("cuDeviceGet failed")
    rc = fn(dev, ctypes.c_uint(flags))
    if rc != 0 and flags != 0:
        raise CudaError(f"cuDevicePrimaryCtxSetFlags({flags}) returned CUDA error {rc}: {_ACTIVE}")

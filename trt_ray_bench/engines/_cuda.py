"""A tiny CUDA facade: the dozen runtime calls the GPU runners need, over cuda-python
(``cuda.bindings.runtime`` / ``cuda.cudart``) or, where only that is installed (common on
Jetson), pycuda. Pointers and streams are plain ints; errors raise ``CudaError``."""

from __future__ import annotations

import ctypes

import numpy as np

from ..errors import MissingExtra

#: cudaDeviceSchedule* flags, by the names the spec uses (``options.sync_wait``)
SCHEDULE = {"auto": 0, "spin": 1, "yield": 2, "block": 4}


class CudaError(RuntimeError):
    pass


def load(sync_wait: str = "auto"):
    """The first facade that imports: cuda-python, then pycuda."""
    try:
        return CudaPython(sync_wait)
    except ImportError:
        pass
    try:
        return PyCuda(sync_wait)
    except ImportError:
        raise MissingExtra("cuda-python", "tensorrt", "running on the GPU (or install pycuda)") from None


class CudaPython:
    """cuda-python's runtime bindings: every call returns ``(err, *values)``."""

    name = "cuda-python"

    def __init__(self, sync_wait: str = "auto"):
        try:
            from cuda.bindings import runtime as rt  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart as rt  # older cuda-python
        self.rt = rt
        # Must precede the primary context's creation: how host threads wait for the GPU.
        self._ok(rt.cudaSetDeviceFlags(SCHEDULE[sync_wait]), "cudaSetDeviceFlags")

    def _ok(self, ret, what: str):
        err = ret[0]
        if int(err) != 0:
            name = self.rt.cudaGetErrorString(err)[1]
            raise CudaError(f"{what}: {name.decode() if isinstance(name, bytes) else name}")
        return ret[1] if len(ret) == 2 else ret[1:]

    def device_name(self, device: int = 0) -> str:
        props = self._ok(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        n = props.name
        return (n.decode() if isinstance(n, bytes) else str(n)).rstrip("\x00")

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
        self._pinned = getattr(self, "_pinned", []) + [ptr]
        return arr

    def htod(self, dst: int, src: np.ndarray, stream: int) -> None:
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync")

    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None:
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync")

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
        for p in getattr(self, "_pinned", []):
            self.rt.cudaFreeHost(p)
        self._pinned = []


class PyCuda:
    """pycuda's driver API, for boards where that is what is installed."""

    name = "pycuda"

    def __init__(self, sync_wait: str = "auto"):
        import pycuda.driver as drv

        drv.init()
        flags = {"auto": drv.ctx_flags.SCHED_AUTO, "spin": drv.ctx_flags.SCHED_SPIN,
                 "yield": drv.ctx_flags.SCHED_YIELD, "block": drv.ctx_flags.SCHED_BLOCKING_SYNC}[sync_wait]
        self.drv = drv
        self.ctx = drv.Device(0).retain_primary_context()
        self.ctx.push()
        self._flags = flags
        self._objs = {}

    def device_name(self, device: int = 0) -> str:
        return self.drv.Device(device).name()

    def malloc(self, nbytes: int) -> int:
        a = self.drv.mem_alloc(max(1, nbytes))
        self._objs[int(a)] = a
        return int(a)

    def free(self, ptr: int) -> None:
        self._objs.pop(ptr, None)

    def host_array(self, shape, dtype) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def _s(self, stream: int):
        return self._objs[("stream", stream)]

    def htod(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.drv.memcpy_htod_async(dst, src, self._s(stream))

    def dtoh(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.drv.memcpy_dtoh_async(dst, src, self._s(stream))

    def stream(self) -> int:
        s = self.drv.Stream()
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
        raise CudaError("CUDA graph capture needs cuda-python (pip install cuda-python)")

    def launch(self, graph_exec, stream: int) -> None:  # pragma: no cover
        raise CudaError("CUDA graph capture needs cuda-python")

    def close(self) -> None:
        self._objs.clear()
        try:
            self.ctx.pop()
        except Exception:  # noqa: BLE001
            pass


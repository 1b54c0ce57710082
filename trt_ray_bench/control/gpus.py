"""The GPUs of this machine, the ones ``CUDA_VISIBLE_DEVICES`` lets a node use, and the
lease by which one experiment owns one of them.

Numbering. A GPU is named by its NVML index, which is nvidia-smi's (PCI bus order), and
by its UUID (``GPU-...``). CUDA numbers devices fastest-first unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; so integers in ``CUDA_VISIBLE_DEVICES`` are read here as
nvidia-smi's indices (what users type, and what CUDA means under PCI_BUS_ID), and an
experiment's processes are pinned by UUID, which no ordering can change.

The lease. Each GPU has a lock file in a folder shared by every node on the machine
(``TRB_GPU_LOCK_DIR``, default ``/tmp/trb-gpu-locks``); the Monitor of an experiment holds
one with ``flock`` for its life. The kernel drops the lock when the process ends, however
it ends (SIGKILL included), so a killed run never leaves a GPU taken.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import UserError
from ..spec._sweep import slug
from . import platform as _platform
from ._command import run, which

ENV = "CUDA_VISIBLE_DEVICES"
#: what the experiment's processes get besides CUDA_VISIBLE_DEVICES: PCI order for any
#: index, and Ray told not to overwrite CUDA_VISIBLE_DEVICES (Ray 2.10 sets it to "" in
#: every process that asked Ray for no GPU, even over a runtime_env's value).
ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}
LOCK_DIR = "/tmp/trb-gpu-locks"
#: CUDA's spellings of "no device" (``NoDevFiles``: what SLURM and Ray write for none)
_NONE = ("", "-1", "NoDevFiles")


@dataclass(frozen=True)
class Gpu:
    """One GPU: ``index`` NVML's / nvidia-smi's (PCI bus order; 0 on a Jetson), ``uuid``
    ``GPU-...`` (None where no NVML or nvidia-smi names it: a Jetson before Thor)."""

    index: int
    uuid: Optional[str] = None
    name: str = ""

    @property
    def cuda_id(self) -> str:
        """What CUDA_VISIBLE_DEVICES names it by: the UUID, else the index."""
        return self.uuid or str(self.index)

    @property
    def key(self) -> str:
        """Its lock file's name."""
        return self.uuid or f"gpu{self.index}"


def _nvml_gpus() -> Optional[List[Gpu]]:
    """Every GPU NVML sees, or None where NVML does not answer (no pynvml, no driver)."""
    try:
        import pynvml
    except Exception:  # noqa: BLE001 - not installed, or broken: nvidia-smi may still answer
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver / library
        return None
    try:
        out = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid, name = pynvml.nvmlDeviceGetUUID(h), pynvml.nvmlDeviceGetName(h)
            out.append(Gpu(i, uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                           name.decode() if isinstance(name, bytes) else str(name)))
        return out
    except Exception:  # noqa: BLE001 - a driver that answers init but not the devices
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def parse_smi_list(text: str) -> List[Gpu]:
    """``nvidia-smi --query-gpu=index,uuid,name --format=csv,noheader`` as records."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) == 3 and parts[0].isdigit():
            out.append(Gpu(int(parts[0]), parts[1] or None, parts[2]))
    return out


def _smi_gpus() -> Optional[List[Gpu]]:
    """The same list from nvidia-smi (the driver's own tool: no pynvml needed), or None."""
    if which("nvidia-smi") is None:
        return None
    a = run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"], timeout_s=20.0)
    return parse_smi_list(a.out) if a.ok else None


def list_gpus() -> List[Gpu]:
    """Every GPU of this machine, whatever CUDA_VISIBLE_DEVICES says: a Jetson's one
    integrated GPU; else NVML's list, else nvidia-smi's; else none. ``TRB_GPU_SOURCE``
    (``nvml`` or ``nvidia-smi``) asks one source only: the tests' stand-in nvidia-smi is
    the machine's, whatever NVML a test machine has."""
    plat = _platform.detect_platform()
    if plat["kind"] == "jetson":
        return [Gpu(0, None, plat["board"])]
    if plat["kind"] == "cpu":
        return []
    source = os.environ.get("TRB_GPU_SOURCE", "")
    found = _nvml_gpus() if source != "nvidia-smi" else None
    if found is None and source != "nvml":
        found = _smi_gpus()
    return found or []


def select_visible(value: Optional[str], gpus: Sequence[Gpu]) -> List[Gpu]:
    """The GPUs a ``CUDA_VISIBLE_DEVICES`` value leaves visible, in its order, by CUDA's
    rules: unset, all; ``""``, ``-1`` or ``NoDevFiles``, none; otherwise a comma list of
    indices (nvidia-smi's) or UUIDs (``GPU-...``, or an unambiguous prefix of one), read
    up to the first entry that names no GPU (or one already named), as CUDA stops there.
    A MIG instance (``MIG-...``) is refused: an experiment owns a whole GPU, whose clocks
    every instance on it shares."""
    if value is None:
        return list(gpus)
    value = value.strip()
    if value in _NONE:
        return []
    out: List[Gpu] = []
    for token in (t.strip() for t in value.split(",")):
        if token.upper().startswith("MIG-"):
            raise UserError(ENV, f"{value}: MIG instances are not supported (an experiment owns a whole GPU and "
                                 "its clocks); name whole GPUs by index or GPU-UUID")
        if token.lstrip("+-").isdigit():
            hit = [g for g in gpus if g.index == int(token)]
        elif token.upper().startswith("GPU-"):
            hit = [g for g in gpus if g.uuid and g.uuid.lower().startswith(token.lower())]
        else:
            hit = []
        if len(hit) != 1 or hit[0] in out:
            break  # CUDA ignores this entry and all after it
        out.append(hit[0])
    return out


def visible_gpus(value: Optional[str] = None, gpus: Optional[Sequence[Gpu]] = None) -> List[Gpu]:
    """This process's GPUs: ``list_gpus()`` narrowed by ``CUDA_VISIBLE_DEVICES`` (``value``
    stands in for the environment's). On a Jetson, whose GPU has no UUID here, any
    ``GPU-...`` entry first in the list is taken to name it."""
    if value is None:
        value = os.environ.get(ENV)
    gpus = list_gpus() if gpus is None else list(gpus)
    if len(gpus) == 1 and gpus[0].uuid is None and value and value.strip().upper().startswith("GPU-"):
        return list(gpus)
    return select_visible(value, gpus)


def board_kind() -> str:
    """This node's kind, as a sweep's ``nodes: {board: ...}`` names it: the Jetson's
    device-tree model, the desktop GPU's name, or ``cpu``; slugged (``spec.slug``)."""
    plat = _platform.detect_platform()
    if plat["kind"] == "jetson":
        return slug(plat["board"])
    if plat["kind"] == "dgpu":
        try:
            gpus = visible_gpus()  # this node's first GPU (NVML's name, else nvidia-smi's)
            return slug(gpus[0].name if gpus else "") or "dgpu"
        except Exception:  # noqa: BLE001 - a driver that names no GPU: still a GPU node
            return "dgpu"
    return "cpu"


def detect_gpus() -> int:
    """How many GPUs this node offers, for Ray's ``num_gpus`` and the node's slots: the
    GPUs ``CUDA_VISIBLE_DEVICES`` leaves visible (:func:`visible_gpus`; a Jetson's
    integrated GPU, which Ray does not see by itself, counts as one)."""
    return len(visible_gpus())


def ray_gpus_by_number(count: int, value: Optional[str] = None) -> List[Gpu]:
    """Ray's GPU ids where nothing names this machine's GPUs (no NVML, no nvidia-smi:
    ``--num-gpus`` given by hand): the entries of CUDA_VISIBLE_DEVICES, as Ray numbers
    them, else 0..count-1."""
    if value is None:
        value = os.environ.get(ENV)
    entries = [t.strip() for t in value.split(",")] if value is not None and value.strip() not in _NONE else []
    entries = entries[:count] or [str(i) for i in range(count)]
    return [Gpu(int(e) if e.isdigit() else k, e if e.upper().startswith("GPU-") else None)
            for k, e in enumerate(entries)]


def experiment_env(cuda_id: str, mps_pipe_dir: Optional[str] = None) -> Dict[str, str]:
    """The environment that pins an experiment's processes (model actors, the engine
    build) to its leased GPU, and to that GPU's MPS daemon where it has its own."""
    env = {ENV: cuda_id, **ORDER}
    if mps_pipe_dir:
        env["CUDA_MPS_PIPE_DIRECTORY"] = mps_pipe_dir
    return env


def lock_dir() -> Path:
    return Path(os.environ.get("TRB_GPU_LOCK_DIR") or LOCK_DIR)


def _open_lock(path: Path) -> int:
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: a read-only descriptor can flock too
        return os.open(str(path), os.O_RDONLY)
    try:
        os.fchmod(fd, 0o666)  # the next user of this GPU may be someone else
    except OSError:
        pass
    return fd


def holder_text(path: Path) -> str:
    try:
        text = path.read_text().split()
    except OSError:
        return ""
    return f" (pid {text[0]})" if text and text[0].isdigit() else ""


class GpuLease:
    """One GPU of this machine, held (``flock``) until :meth:`release` or this process ends."""

    def __init__(self, gpu: Gpu, path: Path, fd: int):
        self.gpu, self.path, self._fd = gpu, path, fd

    @classmethod
    def acquire(cls, gpus: Sequence[Gpu], wait_s: float = 0.0, folder: Optional[Path] = None) -> "GpuLease":
        """The first of ``gpus`` no other experiment holds; waits up to ``wait_s`` for one
        (a just-finished experiment's processes may still be exiting), then refuses in one
        line naming who holds what."""
        if not gpus:
            raise UserError("gpu", "this node has no GPU to give the experiment (CUDA_VISIBLE_DEVICES hides them all, "
                                   "or no NVIDIA GPU answers)")
        folder = lock_dir() if folder is None else folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o1777)  # shared by every user's nodes, like /tmp
        except PermissionError:
            pass  # someone else made it, writable by all
        except OSError as exc:
            raise UserError("gpu", f"cannot make the GPU lock folder {folder} ({exc.strerror}); "
                                   "set TRB_GPU_LOCK_DIR to a writable folder") from None
        t_end = time.monotonic() + wait_s
        while True:
            for g in gpus:
                path = folder / f"{g.key}.lock"
                try:
                    fd = _open_lock(path)
                except OSError as exc:
                    raise UserError("gpu", f"cannot open the GPU lock {path} ({exc.strerror}); "
                                           "set TRB_GPU_LOCK_DIR to a writable folder") from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        continue
                    raise
                try:  # who holds it, for the next one refused
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()} {g.cuda_id}\n".encode())
                except OSError:
                    pass  # a read-only descriptor: the lock holds all the same
                return cls(g, path, fd)
            if time.monotonic() >= t_end:
                break
            time.sleep(0.05)
        held = ", ".join(f"GPU {g.index}{holder_text(folder / f'{g.key}.lock')}" for g in gpus)
        raise UserError("gpu", f"no free GPU on this node: {held} each run another experiment (waited {wait_s:g} s "
                               f"for one to be given back; locks in {folder})")

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def as_dict(self) -> Dict[str, object]:
        """What the driver and the run's records get: ``index``, ``uuid``, ``name``, and
        ``cuda_visible_devices`` for the experiment's processes."""
        return {**asdict(self.gpu), "cuda_visible_devices": self.gpu.cuda_id, "lock": str(self.path)}

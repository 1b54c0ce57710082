"""A Jetson's JetPack generation, the Python and TensorRT it brings, and whether this
interpreter can import JetPack's TensorRT: ``trb doctor``'s Jetson install check.

JetPack installs TensorRT's Python module into the system Python's dist-packages
(``/usr/lib/python3.X/dist-packages/tensorrt``, package ``python3-libnvinfer``), built for
that one Python. A venv sees it only when made from that Python with
``--system-site-packages``; ``pip install tensorrt`` is a desktop/SBSA build, not
JetPack's. Each way this goes wrong gets its own fix, in words.

The interpreter is asked in a child process (a broken ``tensorrt`` can crash the process
that imports it); the system folders are read under ``TRB_ROOT`` (``_paths``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from ._command import run
from ._paths import system_path

SYSTEM_LIB = "/usr/lib"  # python3.X/dist-packages and aarch64-linux-gnu/libnvinfer.so.* below it
LIBNVINFER = "/usr/lib/aarch64-linux-gnu"
VENV = "~/trb-venv"  # the README's venv, named in a fix where this interpreter is not a venv


class Generation(NamedTuple):
    jetpack: str  # major: "5"
    python: str  # what JetPack's TensorRT module is built for: "3.8"
    tensorrt: str
    ray: str


#: L4T (Jetson Linux) major release -> the JetPack generation and what it brings
GENERATIONS = {
    "32": Generation("4", "3.6", "8.2", "none: Ray 2.x needs Python 3.8 or newer (tegrastats logs only)"),
    "35": Generation("5", "3.8", "8.5", "2.10.0 at most (the last with Python 3.8 wheels for aarch64): pin "
                                        "ray==2.10.0 on every node; JetPack 6/7 boards need a cluster of their own"),
    "36": Generation("6", "3.10", "8.6 / 10.3", "current (one Ray and Python version on every node)"),
    "38": Generation("7", "3.12", "10.13+", "current (one Ray and Python version on every node)"),
    "39": Generation("7", "3.12", "10.13+", "current (one Ray and Python version on every node)"),
}
_BY_JETPACK = {g.jetpack: g for g in GENERATIONS.values()}


def generation(l4t: str, jetpack: str = "") -> Optional[Generation]:
    """The generation of L4T release ``l4t`` (``35.4.1``), else of JetPack ``jetpack``."""
    g = GENERATIONS.get(l4t.split(".")[0]) if l4t else None
    return g or (_BY_JETPACK.get(jetpack.split(".")[0]) if jetpack else None)


# ------------------------------------------------------------------ what is on disk
_SO_TAG = re.compile(r"cpython-3(\d+)")


def jetpack_modules() -> List[Tuple[str, Path]]:
    """JetPack's TensorRT modules in the system dist-packages: (Python ``3.X``, folder).
    ``/usr/lib/python3/dist-packages`` gives its version by the extension's tag, if any."""
    found = []
    for folder in sorted(system_path(SYSTEM_LIB).glob("python3*/dist-packages/tensorrt")):
        if not folder.is_dir():
            continue
        ver = folder.parent.parent.name[len("python"):]
        if ver == "3":
            tags = {m.group(1) for p in folder.glob("*.so") for m in [_SO_TAG.search(p.name)] if m}
            ver = f"3.{tags.pop()}" if len(tags) == 1 else ""
        found.append((ver, folder))
    return found


def libnvinfer() -> List[Path]:
    return sorted(system_path(LIBNVINFER).glob("libnvinfer.so*"))


# ------------------------------------------------------------------ what the interpreter sees
_PROBE = r"""
import importlib.util, json, sys
out = {"version": "%d.%d.%d" % tuple(sys.version_info[:3]), "executable": sys.executable,
       "prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix)}
try:
    spec = importlib.util.find_spec("tensorrt")
except Exception as exc:
    spec, out["error"] = None, "%s: %s" % (type(exc).__name__, exc)
if spec is not None:
    where = list(spec.submodule_search_locations or []) or [spec.origin]
    out["origin"] = where[0]
    print(json.dumps(out), flush=True)  # found: said before the import that may crash
    try:
        import tensorrt
        out["trt_version"] = str(getattr(tensorrt, "__version__", "") or "unknown")
    except BaseException as exc:
        lines = str(exc).strip().splitlines() or [""]
        out["error"] = "%s: %s" % (type(exc).__name__, lines[0][:300])
try:
    from importlib import metadata
    out["dists"] = sorted({(d.metadata["Name"], d.version, str(d.locate_file(""))) for d in metadata.distributions()
                           if (d.metadata["Name"] or "").lower().replace("_", "-").startswith("tensorrt")})
except Exception:
    out["dists"] = []
print(json.dumps(out))
"""


def probe(python: str = sys.executable) -> Dict[str, object]:
    """What ``python`` says about itself and ``tensorrt``: its version, prefixes, where
    ``tensorrt`` is found, its version or import error, and the ``tensorrt*`` pip dists."""
    a = run([python, "-c", _PROBE], timeout_s=120.0)
    said = [ln for ln in a.out.splitlines() if ln.startswith("{")]
    info = json.loads(said[-1]) if said else {}
    if not a.ok:
        info["error"] = (f"the import crashed the interpreter (exit status {a.rc})" if said else
                         f"{python} did not answer: {a.first_line()}")
    return info


def venv_sees_system(prefix: str) -> Optional[bool]:
    """``include-system-site-packages`` of the venv at ``prefix`` (None: no pyvenv.cfg)."""
    try:
        text = (Path(prefix) / "pyvenv.cfg").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "include-system-site-packages":
            return value.strip().lower() == "true"
    return False


# ------------------------------------------------------------------ the report
def _under(path: str, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def _venv_text(p: Dict[str, object]) -> str:
    if p.get("prefix") == p.get("base_prefix"):
        return f"not a venv; base {p.get('base_prefix')}"
    sees = venv_sees_system(str(p.get("prefix")))
    return f"venv {p.get('prefix')}, " + ("with" if sees else "without") + " the system site-packages"


def _make_venv(python: str, p: Dict[str, object], clear: bool = False) -> str:
    """The command that makes (or remakes, in place) the venv JetPack's module needs;
    ``clear`` where its packages are for another Python and must be installed again."""
    if p.get("prefix") == p.get("base_prefix"):
        return f"/usr/bin/python{python} -m venv --system-site-packages {VENV}"
    target = p.get("prefix")
    if clear:
        return (f"/usr/bin/python{python} -m venv --clear --system-site-packages {target}, then install "
                "trt_ray_bench again")
    return f"/usr/bin/python{python} -m venv --system-site-packages {target}"


def _not_found_fix(p: Dict[str, object], ver: str, modules: List[Tuple[str, Path]], gen: Optional[Generation]) -> str:
    if not modules:
        return ("FIX: JetPack's TensorRT Python module is not installed (no /usr/lib/python3.*/dist-packages/"
                "tensorrt): sudo apt install python3-libnvinfer" + ("" if libnvinfer() else
                " nvidia-tensorrt (or the whole nvidia-jetpack)"))
    mine = [m for v, m in modules if v == ver]
    if not mine:
        others = ", ".join(f"{v or '?'} ({m})" for v, m in modules)
        want = next((v for v, _ in modules if v), gen.python if gen else "3")
        return (f"FIX: JetPack's TensorRT module is for Python {others}; this is Python {ver}: make the venv "
                f"from the system's Python {want}: {_make_venv(want, p, clear=True)}")
    where = mine[0]
    if p.get("prefix") != p.get("base_prefix") and not venv_sees_system(str(p.get("prefix"))):
        return (f"FIX: JetPack's module is at {where}, but this venv does not see the system site-packages: "
                f"re-create it with {_make_venv(ver, p)} (or set include-system-site-packages = true in "
                f"{Path(str(p.get('prefix'))) / 'pyvenv.cfg'})")
    if p.get("base_prefix") != "/usr":
        return (f"FIX: JetPack's module is at {where}, for the system's /usr/bin/python{ver}; this Python "
                f"(base {p.get('base_prefix')}) is another installation (pyenv, conda, ...) and does not see it: "
                f"{_make_venv(ver, p)}")
    return (f"FIX: JetPack's module is at {where} but {p.get('executable')} does not find it: check "
            f"python{ver} -c 'import sys; print(sys.path)' (PYTHONNOUSERSITE, PYTHONPATH)")


def tensorrt_lines(gen: Optional[Generation], python: str = sys.executable,
                   label=lambda k, v: f"{k:<13} {v}") -> List[str]:
    """The ``python``, ``trt module`` and ``libnvinfer`` lines of ``trb doctor`` on a
    Jetson: this interpreter against what JetPack expects, whether it imports JetPack's
    TensorRT, and if not the fix."""
    p = probe(python)
    if "version" not in p:
        return [label("trt module", f"could not be checked: {p.get('error', 'no answer')}")]
    full = str(p["version"])
    ver = ".".join(full.split(".")[:2])
    modules = jetpack_modules()
    system = [m.parent for _, m in modules] + [system_path(SYSTEM_LIB)]
    expect = f"; JetPack {gen.jetpack} brings {gen.python}" if gen else ""
    if gen and gen.python != ver:
        expect += f" (its TensorRT module is built for {gen.python})"
    lines = [label("python", f"{full} ({p.get('executable')}; {_venv_text(p)}){expect}")]

    origin = p.get("origin")
    if origin is None:
        trt = _not_found_fix(p, ver, modules, gen)
    elif any(_under(str(origin), s) for s in system):
        if "error" not in p:
            trt = f"ok: JetPack's TensorRT {p.get('trt_version')} ({Path(str(origin))})"
        elif not libnvinfer() or "libnvinfer" in str(p["error"]):
            trt = (f"FIX: JetPack's module ({origin}) cannot load TensorRT's libraries ({p['error']}): "
                   "sudo apt install nvidia-tensorrt")
        else:
            trt = (f"FIX: JetPack's module ({origin}) does not import ({p['error']}): python{ver} -c "
                   "'import tensorrt' shows the whole error")
    else:
        site = Path(str(origin)).parent
        dists = [d for d in p.get("dists") or [] if _under(d[2], site)]
        names = " ".join(d[0] for d in dists) or "tensorrt"
        what = ", ".join(f"{d[0]} {d[1]}" for d in dists) or "a tensorrt module"
        state = f"; it imports as {p.get('trt_version')}" if "error" not in p else f" and fails: {p['error']}"
        trt = (f"FIX: a pip-installed tensorrt ({what} in {site}) shadows JetPack's{state}; pip's is not the "
               f"Jetson build: pip uninstall {names}")
        if not modules:
            trt += "; then sudo apt install python3-libnvinfer (JetPack's)"
        elif p.get("prefix") != p.get("base_prefix") and not venv_sees_system(str(p.get("prefix"))):
            trt += f"; and the venv must see the system site-packages: {_make_venv(ver, p)}"
    lines.append(label("trt module", trt))
    libs = libnvinfer()
    lines.append(label("libnvinfer", str(max(libs, key=lambda x: len(x.name))) if libs else
                       f"MISSING: no {LIBNVINFER}/libnvinfer.so*: sudo apt install nvidia-tensorrt"))
    return lines

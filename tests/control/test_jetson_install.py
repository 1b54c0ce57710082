"""``trb doctor``'s install check on a Jetson: the JetPack generation, the Python it
expects, and whether this interpreter imports JetPack's TensorRT, with the fix for each
way it does not.

The board is the fake AGX Orin under TRB_ROOT (conftest). JetPack's TensorRT module is a
stand-in package in the fake ``/usr/lib/python3.X/dist-packages``; the system Python's
own path to it is PYTHONPATH. The interpreters asked are real: this one, and venvs made
here with ``python -m venv`` with and without ``--system-site-packages``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trt_ray_bench.control import doctor_lines
from trt_ray_bench.control.jetpack import generation, tensorrt_lines

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
LIBNVINFER_OK = "__version__ = '8.5.2.2'\n"
LIBNVINFER_GONE = "raise ImportError('libnvinfer.so.8: cannot open shared object file: No such file or directory')\n"


def _jetpack_trt(root: Path, py: str = PY, body: str = LIBNVINFER_OK, lib: bool = True) -> Path:
    """JetPack's module for Python ``py`` (python3-libnvinfer) and, with ``lib``, libnvinfer."""
    pkg = root / f"usr/lib/python{py}/dist-packages/tensorrt"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    if lib:
        libdir = root / "usr/lib/aarch64-linux-gnu"
        libdir.mkdir(parents=True)
        for name in ("libnvinfer.so.8", "libnvinfer.so.8.5.2"):
            (libdir / name).write_text("")
    return pkg


def _venv(path: Path, system: bool) -> Path:
    argv = [sys.executable, "-m", "venv", "--without-pip", str(path)] + (["--system-site-packages"] if system else [])
    subprocess.run(argv, check=True)
    return path / "bin" / "python"


def _site(venv_python: Path) -> Path:
    return venv_python.parent.parent / "lib" / f"python{PY}" / "site-packages"


def _lines(gen_l4t: str = "35.4.1", python: str = sys.executable) -> dict:
    return {line[:13].strip(): line[14:] for line in tensorrt_lines(generation(gen_l4t), python)}


def test_doctor_on_a_board_that_has_it_right(fake_jetson, monkeypatch):
    pkg = _jetpack_trt(fake_jetson.root)
    monkeypatch.setenv("PYTHONPATH", str(pkg.parent))  # the system Python's dist-packages
    lines = doctor_lines()
    assert lines[1:3] == ["jetson linux  L4T 35.4.1, JetPack 5.1.2",
                          "jetpack       JetPack 5: Python 3.8, TensorRT 8.5, Ray 2.10.0 at most (the last with Python "
                          "3.8 wheels for aarch64): pin ray==2.10.0 on every node; JetPack 6/7 boards need a cluster "
                          "of their own"]
    assert lines[3].startswith(f"python        {sys.version.split()[0]} ({sys.executable}; ")
    assert lines[4] == f"trt module    ok: JetPack's TensorRT 8.5.2.2 ({pkg})"
    assert lines[5] == f"libnvinfer    {fake_jetson.root}/usr/lib/aarch64-linux-gnu/libnvinfer.so.8.5.2"
    assert not any("FIX" in line for line in lines[2:6])


@pytest.mark.parametrize("release, jetpack, python", [
    ("# R35 (release), REVISION: 6.1, GCID: 1, BOARD: t186ref, EABI: aarch64\n", "5", "3.8"),
    ("# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64\n", "6", "3.10"),
    ("# R38 (release), REVISION: 2.0, GCID: 1, BOARD: generic, EABI: aarch64\n", "7", "3.12"),
    ("# R39 (release), REVISION: 0.0, GCID: 1, BOARD: generic, EABI: aarch64\n", "7", "3.12"),
])
def test_the_generation_and_its_python(fake_jetson, release, jetpack, python):
    (fake_jetson.root / "etc/nv_tegra_release").write_text(release)
    lines = doctor_lines()
    assert lines[2].startswith(f"jetpack       JetPack {jetpack}: Python {python}, ")
    expect = f"; JetPack {jetpack} brings {python}"
    if python != PY:
        expect += f" (its TensorRT module is built for {python})"
    assert lines[3].startswith("python        ") and lines[3].endswith(expect)


def test_a_venv_without_the_system_site_packages(fake_jetson, tmp_path):
    pkg = _jetpack_trt(fake_jetson.root)
    venv = tmp_path / "trb-venv"
    got = _lines(python=str(_venv(venv, system=False)))
    assert got["python"].endswith(f"venv {venv}, without the system site-packages); JetPack 5 brings 3.8"
                                  + ("" if PY == "3.8" else " (its TensorRT module is built for 3.8)"))
    assert got["trt module"] == (
        f"FIX: JetPack's module is at {pkg}, but this venv does not see the system site-packages: re-create it "
        f"with /usr/bin/python{PY} -m venv --system-site-packages {venv} (or set include-system-site-packages = "
        f"true in {venv}/pyvenv.cfg)")


def test_a_venv_of_another_python_installation(fake_jetson, tmp_path):
    """With --system-site-packages, but made from a Python that is not the system's
    /usr/bin/python3.X (pyenv here; conda on boards): it cannot see JetPack's module."""
    pkg = _jetpack_trt(fake_jetson.root)
    venv = tmp_path / "trb-venv"
    got = _lines(python=str(_venv(venv, system=True)))
    assert f"venv {venv}, with the system site-packages" in got["python"]
    assert got["trt module"] == (
        f"FIX: JetPack's module is at {pkg}, for the system's /usr/bin/python{PY}; this Python (base "
        f"{sys.base_prefix}) is another installation (pyenv, conda, ...) and does not see it: /usr/bin/python{PY} "
        f"-m venv --system-site-packages {venv}")


def test_jetpacks_module_is_for_another_python(fake_jetson):
    other = "3.8" if PY != "3.8" else "3.10"
    pkg = _jetpack_trt(fake_jetson.root, py=other)
    remake = (f"--clear --system-site-packages {sys.prefix}, then install trt_ray_bench again"
              if sys.prefix != sys.base_prefix else "--system-site-packages ~/trb-venv")  # its packages are for PY
    assert _lines()["trt module"] == (
        f"FIX: JetPack's TensorRT module is for Python {other} ({pkg}); this is Python {PY}: make the venv from "
        f"the system's Python {other}: /usr/bin/python{other} -m venv {remake}")


def test_a_pip_installed_tensorrt_shadows_jetpacks(fake_jetson, tmp_path):
    """`pip install tensorrt` in a venv that does see the system site-packages: the venv's
    copy comes first on the path, and it is not the Jetson build."""
    _jetpack_trt(fake_jetson.root)
    py = _venv(tmp_path / "v", system=True)
    site = _site(py)
    (site / "tensorrt").mkdir()
    (site / "tensorrt/__init__.py").write_text("__version__ = '10.3.0'\n")
    for name, version in (("tensorrt", "10.3.0"), ("tensorrt_cu12", "10.3.0")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    assert _lines(python=str(py))["trt module"] == (
        f"FIX: a pip-installed tensorrt (tensorrt 10.3.0, tensorrt_cu12 10.3.0 in {site}) shadows JetPack's; it "
        "imports as 10.3.0; pip's is not the Jetson build: pip uninstall tensorrt tensorrt_cu12")


def test_a_pip_installed_tensorrt_where_jetpack_has_none(fake_jetson, tmp_path):
    py = _venv(tmp_path / "v", system=False)
    site = _site(py)
    (site / "tensorrt").mkdir()
    (site / "tensorrt/__init__.py").write_text("raise OSError('libnvinfer.so.10: wrong ELF class')\n")
    (site / "tensorrt-10.13.0.dist-info").mkdir()
    (site / "tensorrt-10.13.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: tensorrt\nVersion: 10.13.0\n")
    got = _lines(python=str(py))
    assert got["trt module"] == (
        f"FIX: a pip-installed tensorrt (tensorrt 10.13.0 in {site}) shadows JetPack's and fails: OSError: "
        "libnvinfer.so.10: wrong ELF class; pip's is not the Jetson build: pip uninstall tensorrt; then sudo apt "
        "install python3-libnvinfer (JetPack's)")
    assert got["libnvinfer"] == ("MISSING: no /usr/lib/aarch64-linux-gnu/libnvinfer.so*: sudo apt install "
                                 "nvidia-tensorrt")


def test_jetpacks_module_without_its_libraries(fake_jetson, monkeypatch):
    pkg = _jetpack_trt(fake_jetson.root, body=LIBNVINFER_GONE, lib=False)
    monkeypatch.setenv("PYTHONPATH", str(pkg.parent))
    assert _lines()["trt module"] == (
        f"FIX: JetPack's module ({pkg}) cannot load TensorRT's libraries (ImportError: libnvinfer.so.8: cannot "
        "open shared object file: No such file or directory): sudo apt install nvidia-tensorrt")


def test_no_tensorrt_at_all(fake_jetson):
    assert _lines()["trt module"] == (
        "FIX: JetPack's TensorRT Python module is not installed (no /usr/lib/python3.*/dist-packages/tensorrt): "
        "sudo apt install python3-libnvinfer nvidia-tensorrt (or the whole nvidia-jetpack)")


def test_an_import_that_crashes_the_interpreter_is_reported(fake_jetson, monkeypatch):
    """A wrong build can abort the process that imports it: doctor asks a child, and says so."""
    pkg = _jetpack_trt(fake_jetson.root, body="import os\nos.abort()\n")
    monkeypatch.setenv("PYTHONPATH", str(pkg.parent))
    text = "\n".join(doctor_lines())
    assert (f"trt module    FIX: JetPack's module ({pkg}) does not import (the import crashed the interpreter "
            f"(exit status -6)): python{PY} -c 'import tensorrt' shows the whole error") in text
    assert "memory clock" in text  # the rest of the report still came


def test_a_missing_tensorrt_or_cuda_binding_points_at_jetpack_not_pip(fake_jetson, monkeypatch):
    """On a board, the backend's own refusal names JetPack and the jetson extra, never
    `pip install 'trt_ray_bench[tensorrt]'` (a desktop build)."""
    from trt_ray_bench.engines import backend_lines
    from trt_ray_bench.engines import _cuda
    from trt_ray_bench.errors import MissingExtra

    monkeypatch.delenv("TRB_CUDA", raising=False)
    for module in ("tensorrt", "cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda",
                   "pycuda.driver"):
        monkeypatch.setitem(sys.modules, module, None)  # absent here, whatever this machine has (torch's cuda-bindings)
    assert ("backend       tensorrt: not installed (optional); the tensorrt backend needs it: on a Jetson "
            "it comes with JetPack, never from pip: a venv made with --system-site-packages from the system's "
            "python3 sees it (trb doctor says what this Python lacks)") in backend_lines()
    with pytest.raises(MissingExtra) as err:
        _cuda.import_binding()
    assert err.value.message == (
        "not installed; running on the GPU needs it: pip install 'trt_ray_bench[jetson]' on JetPack 6/7 (cuda-python "
        "of JetPack's CUDA); on JetPack 5 'trt_ray_bench[pycuda]' (builds against JetPack's CUDA: "
        "PATH=/usr/local/cuda/bin:$PATH)")

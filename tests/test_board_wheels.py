"""CI's check that a Jetson board installs this project from wheels (.ci/board_wheels.py):
what it resolves, for which tags, and that it fails naming a dependency without an aarch64
wheel (a real resolution against the index, skipped where the index cannot be reached)."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def board_wheels():
    spec = importlib.util.spec_from_file_location("board_wheels", ROOT / ".ci" / "board_wheels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_each_board_python_has_a_documented_install(board_wheels):
    installs = board_wheels.documented_installs()
    assert set(board_wheels.BOARDS) <= set(installs)
    assert "ray==2.10.0" in installs["3.8"][1]
    reqs = board_wheels.requirements("3.8")
    assert any(r.startswith("ultralytics") for r in reqs)
    assert any(r.startswith("ray") for r in reqs)
    # pycuda (named on JetPack 5's line) compiles on the board: not asked of the index
    assert "pycuda" in installs["3.8"][0]
    assert not any(r.startswith("pycuda") for r in reqs)


def test_tags_are_the_boards_glibc_and_older(board_wheels):
    tags = board_wheels.platforms(31)
    assert tags[0] == "manylinux_2_31_aarch64"
    assert "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert "manylinux_2_32_aarch64" not in tags
    assert not any("x86_64" in t for t in tags)


def test_pips_refusal_is_named_in_one_line(board_wheels):
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement "
        "onnxruntime-gpu==1.19.2 (from versions: none)\n"
        "ERROR: No matching distribution found for onnxruntime-gpu==1.19.2\n")
    assert board_wheels.failure(stderr) == "no wheel for the board: onnxruntime-gpu==1.19.2"
    assert board_wheels.failure("ERROR: something else\n") == "ERROR: something else"


def _index_reachable(url):
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_a_dependency_without_an_aarch64_wheel_fails_named(board_wheels):
    if not _index_reachable(board_wheels.INDEX_URL):
        pytest.skip(f"{board_wheels.INDEX_URL} cannot be reached from here")
    minor = "%d.%d" % sys.version_info[:2]
    glibc = board_wheels.BOARDS.get(minor, ("", 31))[1]
    # onnxruntime-gpu 1.19.2 has x86_64 wheels for this Python, none for aarch64
    bad = board_wheels.resolve(sys.executable, ["tqdm>=4.64", "onnxruntime-gpu==1.19.2"], glibc)
    assert not bad["ok"]
    assert bad["error"] == "no wheel for the board: onnxruntime-gpu==1.19.2"
    good = board_wheels.resolve(sys.executable, ["tqdm>=4.64", "pyyaml>=6"], glibc)
    assert good["ok"], good["error"]
    assert set(good["install"]) >= {"tqdm", "pyyaml"}
    # metadata only: nothing near the size of a wheel of binaries was fetched
    assert good["fetched_bytes"] is not None and good["fetched_bytes"] < 20e6

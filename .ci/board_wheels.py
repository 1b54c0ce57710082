"""Can a Jetson board install this project from wheels alone?

For each board Python given (3.8 = JetPack 5, 3.10 = JetPack 6, 3.12 = JetPack 7), resolve
the Jetson install that docs/install/jetson.md tells users to run (the project's
dependencies, its ``jetson``, ``convert`` and ``ultralytics`` extras and the pins on that
line) for aarch64 at that JetPack's glibc, and fail, naming it, on any dependency that has
no wheel for the board. pycuda is the one exception: it has no wheels at all and compiles
on the board against JetPack's CUDA (its own extra).

Usage (any Python >= 3.8 with pip):

    python .ci/board_wheels.py PYTHON [PYTHON ...] [--self-check REQ] [--index-url URL]

Each PYTHON is an interpreter of a board's minor version (pyenv's is fine: no board is
needed). The resolver runs under that interpreter, because pip evaluates environment
markers (``python_version``, ``platform_machine``) with the interpreter that runs it; the
machine is reported as aarch64 to those markers. ``--self-check REQ`` first resolves once
more with REQ added, which must fail and name REQ (proof that the check can fail).

It is a resolution from metadata, not an install: pip (a pinned release, run from its
wheel) reads each candidate's METADATA from the index (PEP 658 files, else HTTP range
requests into the wheel) and never downloads a whole wheel; torch stays on the index.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "install", "jetson.md")

# The last pip that runs on Python 3.8; pinned so that the shim below meets the internals it
# was written for.
PIP = "pip==25.0.1"
INDEX_URL = "https://pypi.org/simple"

# Board Python -> (JetPack, its glibc minor: Ubuntu 20.04, 22.04, 24.04).
BOARDS = {"3.8": ("JetPack 5", 31), "3.10": ("JetPack 6", 35), "3.12": ("JetPack 7", 39)}
# Extras every board install resolves (jetson.md's line may name fewer), and the ones that
# compile on the board by design.
EXTRAS = ("jetson", "convert", "ultralytics")
COMPILES_ON_BOARD = {"pycuda"}


# ---------------------------------------------------------------------------------------
# What to resolve
# ---------------------------------------------------------------------------------------
def _toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11: pip's own copy of tomli
        from pip._vendor import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def documented_installs(doc=DOC):
    """{python minor: (extras, extra requirement strings)} from jetson.md's install lines.

    A board's block is the fenced block that makes its venv (``/usr/bin/python3.X -m venv``)
    and runs ``pip install -e "./trt_ray_bench[...]" ...``."""
    text = open(doc, encoding="utf-8").read()
    out = {}
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        py = re.search(r"/usr/bin/python(3\.\d+) -m venv", block)
        line = re.search(r'pip install -e "\./trt_ray_bench\[([^\]]*)\]"([^#\n]*)', block)
        if py and line:
            extras = [e.strip() for e in line.group(1).split(",") if e.strip()]
            pins = re.findall(r'"([^"]+)"', line.group(2))
            out[py.group(1)] = (extras, pins)
    return out


def requirements(minor, doc=DOC, pyproject=os.path.join(ROOT, "pyproject.toml")):
    """The requirement strings of the board install of Python ``minor`` (markers kept)."""
    installs = documented_installs(doc)
    if minor not in installs:
        raise SystemExit(f"{os.path.relpath(doc, ROOT)} has no install line for Python {minor}")
    extras, pins = installs[minor]
    project = _toml(pyproject)["project"]
    reqs = list(project["dependencies"])
    for extra in sorted(set(extras) | set(EXTRAS)):
        if extra in COMPILES_ON_BOARD:
            continue
        if extra not in project["optional-dependencies"]:
            raise SystemExit(f"pyproject.toml has no extra {extra!r} (named in jetson.md)")
        reqs += project["optional-dependencies"][extra]
    return reqs + pins


def platforms(glibc_minor):
    """Every manylinux aarch64 tag a board of this glibc accepts (pip does not expand
    ``manylinux_2_X`` to the older ones itself)."""
    tags = [f"manylinux_2_{m}_aarch64" for m in range(glibc_minor, 16, -1)]
    return tags + ["manylinux2014_aarch64"]


# ---------------------------------------------------------------------------------------
# Reading pip's answer
# ---------------------------------------------------------------------------------------
_NO_WHEEL = re.compile(r"(?:Could not find a version that satisfies the requirement|"
                       r"No matching distribution found for) (\S+)")


def failure(stderr):
    """One line naming what pip could not find a wheel for (or its last error)."""
    missing = []
    for name in _NO_WHEEL.findall(stderr):
        if name not in missing:
            missing.append(name)
    if missing:
        return "no wheel for the board: " + ", ".join(missing)
    if "ResolutionImpossible" in stderr or "conflicting dependencies" in stderr:
        lines = [l.strip() for l in stderr.splitlines() if "depends on" in l or "requested" in l]
        return "conflicting requirements: " + "; ".join(lines[:4])
    errors = [l.strip() for l in stderr.splitlines() if l.startswith("ERROR")]
    return errors[-1] if errors else "pip failed: " + (stderr.strip().splitlines() or ["?"])[-1]


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------
def pip_wheel(python, cache):
    """The pinned pip's wheel, fetched once into ``cache``."""
    found = [f for f in os.listdir(cache) if f.startswith("pip-") and f.endswith(".whl")]
    if not found:
        subprocess.run([python, "-m", "pip", "download", "--isolated", "-q", "--no-deps",
                        "--disable-pip-version-check", "--only-binary=:all:", "-d", cache, PIP],
                       check=True)
        found = [f for f in os.listdir(cache) if f.startswith("pip-") and f.endswith(".whl")]
    return os.path.join(cache, found[0])


def interpreter_minor(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def resolve(python, reqs, glibc_minor, index_url=INDEX_URL, cache=None):
    """Resolve ``reqs`` under ``python`` for an aarch64 board; returns a dict with ``ok``,
    ``install`` (name -> version), ``seconds``, ``fetched_bytes`` and ``error``."""
    own_cache = cache is None
    cache = cache or tempfile.mkdtemp(prefix="trb-board-wheels-")
    work = tempfile.mkdtemp(prefix="trb-board-resolve-")
    try:
        req_file = os.path.join(work, "requirements.txt")
        with open(req_file, "w") as f:
            f.write("\n".join(reqs) + "\n")
        counts = os.path.join(work, "bytes")
        args = ["install", "--isolated", "--dry-run", "--ignore-installed", "--no-cache-dir",
                "--disable-pip-version-check", "--use-feature=fast-deps",
                "--only-binary=:all:", "--implementation", "cp",
                "--python-version", interpreter_minor(python),
                "--index-url", index_url, "--target", os.path.join(work, "target"),
                "-r", req_file]
        for tag in platforms(glibc_minor):
            args += ["--platform", tag]
        t0 = time.monotonic()
        proc = subprocess.run([python, os.path.abspath(__file__), "--pip-shim",
                               pip_wheel(python, cache), counts, "--"] + args,
                              capture_output=True, text=True)
        seconds = time.monotonic() - t0
        fetched = int(open(counts).read()) if os.path.exists(counts) else None
        result = {"ok": proc.returncode == 0, "seconds": seconds, "fetched_bytes": fetched,
                  "install": {}, "error": None}
        if proc.returncode == 0:
            would = [l for l in proc.stdout.splitlines() if l.startswith("Would install ")]
            for dist in (would[-1].split()[2:] if would else []):
                name, _, version = dist.rpartition("-")
                result["install"][name.lower().replace("_", "-")] = version
        else:
            result["error"] = failure(proc.stderr)
            result["stderr"] = proc.stderr
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)


def _pip_shim(wheel, counts, pip_args):
    """Run pip from ``wheel`` as a board's resolver: markers see an aarch64 machine, only
    metadata is fetched, and the bytes received are counted into the file ``counts``."""
    import platform

    sys.path.insert(0, wheel)
    platform.machine = lambda: "aarch64"  # what packaging's markers read for platform_machine
    from pip._internal.operations.prepare import RequirementPreparer
    from pip._internal.req.req_install import InstallRequirement
    from pip._vendor.urllib3.response import HTTPResponse

    # pip completes every resolved wheel's download after resolving, even for --dry-run,
    # which needs only the metadata it already has: keep that metadata (by link), skip the
    # downloads, and answer "Would install" from it.
    metadata = {}
    fetch_metadata = RequirementPreparer._fetch_metadata_only

    def remember_metadata(self, req):
        dist = fetch_metadata(self, req)
        if dist is not None:
            metadata[req.link.url] = dist
        return dist

    get_dist = InstallRequirement.get_dist

    def dist_from_metadata(self):
        if self.link is not None and self.link.url in metadata and not self.local_file_path:
            return metadata[self.link.url]
        return get_dist(self)

    RequirementPreparer._fetch_metadata_only = remember_metadata
    RequirementPreparer.prepare_linked_requirements_more = lambda self, reqs, *a, **k: None
    InstallRequirement.get_dist = dist_from_metadata

    received = [0]
    read = HTTPResponse.read

    def counting_read(self, *a, **k):
        before = getattr(self, "_fp_bytes_read", 0)
        data = read(self, *a, **k)
        received[0] += getattr(self, "_fp_bytes_read", 0) - before
        return data

    HTTPResponse.read = counting_read
    from pip._internal.cli.main import main

    try:
        return main(pip_args)
    finally:
        with open(counts, "w") as f:
            f.write(str(received[0]))


def _mb(n):
    return "?" if n is None else "%.1f MB" % (n / 1e6)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--pip-shim"]:
        return _pip_shim(argv[1], argv[2], argv[4:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pythons", nargs="+", help="a board Python's interpreter (3.8, 3.10, 3.12)")
    ap.add_argument("--self-check", metavar="REQ",
                    help="a requirement without aarch64 wheels: resolving with it must fail and name it")
    ap.add_argument("--index-url", default=INDEX_URL)
    args = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="trb-board-wheels-")
    try:
        jobs = []  # (label, python, requirements, glibc, must fail naming)
        for python in args.pythons:
            minor = interpreter_minor(python)
            if minor not in BOARDS:
                raise SystemExit(f"{python} is Python {minor}; boards run {', '.join(BOARDS)}")
            jetpack, glibc = BOARDS[minor]
            where = f"Python {minor} ({jetpack}, aarch64, glibc 2.{glibc})"
            reqs = requirements(minor)
            if args.self_check and not jobs:
                name = re.split(r"[<>=!~;\[ ]", args.self_check)[0]
                jobs.append((f"self-check: {where} + {args.self_check}", python,
                             reqs + [args.self_check], glibc, name))
            jobs.append((where, python, reqs, glibc, None))
        pip_wheel(args.pythons[0], cache)
        # One resolver per board Python, side by side: each waits on the index, not the CPU.
        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda j: resolve(j[1], j[2], j[3], args.index_url, cache),
                                    jobs))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    failed = 0
    for (label, _, _, _, must_name), r in zip(jobs, results):
        took = f"{r['seconds']:.0f} s, {_mb(r['fetched_bytes'])} fetched"
        if must_name is not None:
            if r["ok"] or must_name not in (r["error"] or ""):
                failed += 1
                print(f"{label}: FAILED, expected a failure naming {must_name}, got "
                      f"{r['error'] or 'a resolution'}", file=sys.stderr)
            else:
                print(f"{label}: {r['error']}, as it must ({took})")
        elif r["ok"]:
            key = ", ".join(f"{n} {r['install'][n]}" for n in ("torch", "ray", "onnxruntime")
                            if n in r["install"])
            print(f"{label}: {len(r['install'])} packages, all with wheels ({key}); {took}")
        else:
            failed += 1
            print(f"{label}: {r['error']}", file=sys.stderr)
            if os.environ.get("TRB_BOARD_WHEELS_VERBOSE"):
                print(r["stderr"], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

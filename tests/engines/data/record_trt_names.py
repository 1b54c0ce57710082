"""Print every public name of the installed ``tensorrt`` module, one a line: the module's
names, each class's members, nested classes' members (``ILogger.Severity.ERROR``). The API
test builds its 8.5 and 8.6 stand-ins from the 10.13 stubs less what these records lack.

    python tests/engines/data/record_trt_names.py > tests/engines/data/tensorrt-8.5.3.1-names.txt

No GPU is needed: importing ``tensorrt`` and reading its classes touches no CUDA call (the
x86 wheels of 8.5.3.1 and 8.6.0 import where only their cuBLAS / cuDNN are absent)."""

import inspect
import sys

import tensorrt as trt


def walk(prefix: str, cls, out: set, depth: int = 0) -> None:
    for name in dir(cls):
        if name.startswith("__"):
            continue
        out.add(f"{prefix}.{name}")
        value = getattr(cls, name, None)
        if inspect.isclass(value) and depth < 2 and value.__qualname__.endswith(name) and value is not cls:
            walk(f"{prefix}.{name}", value, out, depth + 1)


def main() -> int:
    names = set()
    for name in dir(trt):
        if name.startswith("__"):
            continue
        names.add(name)
        value = getattr(trt, name)
        if inspect.isclass(value):
            walk(name, value, names)
    print(f"# The public names of tensorrt {trt.__version__} (Python {sys.version.split()[0]}),")
    print("# written by tests/engines/data/record_trt_names.py from the module itself.")
    print("\n".join(sorted(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

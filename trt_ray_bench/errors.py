"""The one exception type for mistakes a user can make (bad spec, missing file, ...).

The CLI prints its message on one line and exits 2; nothing has been measured or
written when it is raised by validation.

The ground floor: every module imports it, and it imports nothing of the package
(``tests/test_layers.py``), so it can never be part of an import cycle.
"""


class UserError(Exception):
    """A problem with the user's input, named by field or file, with what was expected."""

    def __init__(self, where: str, message: str):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self):
        # Picklable whatever the subclass's arguments: a UserError raised inside a Ray
        # actor must reach the driver as itself, to be printed in one line.
        return (_rebuild, (type(self), self.where, self.message))


def _rebuild(cls, where: str, message: str) -> "UserError":
    err = cls.__new__(cls)
    UserError.__init__(err, where, message)
    return err


class MissingExtra(UserError):
    """An optional dependency is needed for what the user asked for and is not installed;
    the fix is the extra to install, or ``fix`` in words (a Jetson's own packages)."""

    def __init__(self, module: str, extra: str, why: str, fix: str = ""):
        install = fix or f"pip install 'trt_ray_bench[{extra}]'"
        super().__init__(module, f"not installed; {why} needs it: {install}")


class BrokenExtra(UserError):
    """An optional dependency is installed but cannot be imported (a library missing from
    the loader path, a CUDA mismatch, a venv that does not see JetPack's module): the real
    error, and its fix."""

    def __init__(self, module: str, why: str, error: BaseException):
        first = (str(error).strip().splitlines() or [error.__class__.__name__])[0][:300]
        super().__init__(module, f"installed but cannot be imported ({error.__class__.__name__}: {first}); "
                                 f"{why} needs it. {broken_hint(module, error)}")


#: the fix for the usual ways an installed module fails to import
_HINTS = (
    ("libnvinfer", "TensorRT's libraries are not on the loader path: on a Jetson use JetPack's own module from "
                   "a venv made with --system-site-packages; on a desktop, the tensorrt wheel's libraries "
                   "(pip install --force-reinstall tensorrt) or LD_LIBRARY_PATH"),
    ("libcud", "a CUDA library is missing or of another version than the module was built for: match the "
               "CUDA of the driver / JetPack (nvidia-smi, trb doctor) and the package's CUDA"),
    ("libcuda.so", "no NVIDIA driver is loaded here (libcuda.so.1): run on the GPU machine or install the driver"),
    ("glibc", "the wheel needs a newer system (glibc) than this one"),
    ("undefined symbol", "the module was built against other library versions than those loaded: reinstall it "
                         "for this CUDA / TensorRT"),
)


def broken_hint(module: str, error: BaseException) -> str:
    text = str(error)
    for needle, hint in _HINTS:
        if needle in text:
            return f"Fix: {hint}."
    return f"Fix: python -c 'import {module}' shows the whole error."


def _missing_itself(exc: BaseException, module: str) -> bool:
    """A ModuleNotFoundError for ``module`` itself (or a parent package of it), not for
    something it imports."""
    name = getattr(exc, "name", None)
    return isinstance(exc, ModuleNotFoundError) and name is not None and (
        module == name or module.startswith(name + "."))


def lazy_import(module: str, extra: str, why: str):
    """Import a heavy optional module only when it is needed. Absent: the extra to install
    (``MissingExtra``). Present but failing to import: the real error and its fix
    (``BrokenExtra``), never "not installed"."""
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, OSError from a shared library, RuntimeError from a binding
        if _missing_itself(exc, module):
            raise MissingExtra(module, extra, why) from None
        raise BrokenExtra(module, why, exc) from None


#: ``trb``'s exit statuses, in one place (``trb --help`` lists them; README "Exit codes")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_DOCTOR = 4
EXIT_CODES = (
    ("0", "success"),
    ("1", "measured and written, but a model (trb run) or a sweep point (trb sweep) failed: the FAILED lines "
          "and the results say why"),
    ("2", "a user error (bad option, spec or file; a cluster that does not answer), in one line: nothing "
          "measured or written; or a file this machine cannot write or read (a full disk, a read-only folder), in "
          "one line: nothing written"),
    ("3", "an internal error (a bug): one line naming the log file that holds the traceback"),
    ("4", "trb doctor printed a FIX:, MISSING or BROKEN line"),
    ("128+N", "stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP): the machine restored, what was "
              "measured written; 141 when the reader of stdout went away"),
)

"""The one exception type for mistakes a user can make (bad spec, missing file, ...).

The CLI prints its message on one line and exits 2; nothing has been measured or
written when it is raised by validation.
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
    """An optional dependency is needed for what the user asked for."""

    def __init__(self, module: str, extra: str, why: str):
        super().__init__(
            module,
            f"not installed; {why} needs it: pip install 'trt_ray_bench[{extra}]'",
        )


def lazy_import(module: str, extra: str, why: str):
    """Import a heavy optional module only when it is needed, naming the extra if absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise MissingExtra(module, extra, why) from exc

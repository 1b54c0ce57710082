"""Ray: the actors of one experiment (ModelActor, Coordinator, Monitor) and the driver
functions that plan and run it on one node."""

import importlib

_WHERE = {"RunTables": "node_run", "build_tables": "node_run", "connect": "node_run", "execute": "node_run",
          "run_plan": "node_run", "Phase": "plan", "Plan": "plan", "make_plan": "plan"}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

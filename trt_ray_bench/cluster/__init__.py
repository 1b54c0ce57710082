"""Ray: the actors of one experiment (ModelActor, Coordinator, Monitor) and the driver
functions that plan and run it on one node."""

from .node_run import RunTables, build_tables, connect, execute, run_plan
from .plan import Phase, Plan, make_plan

__all__ = ["Phase", "Plan", "RunTables", "build_tables", "connect", "execute", "make_plan", "run_plan"]

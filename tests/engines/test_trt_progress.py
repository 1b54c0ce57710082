"""The engine build's progress: TensorRT's ``IProgressMonitor`` where the version has it
(10.0+), nothing below (the spinner then shows the time only). TensorRT is a stand-in
module here (the shape of its Python API: a base class to subclass, the builder config's
``progress_monitor`` property); the calls are the ones TensorRT makes during a build."""

from __future__ import annotations

import types

from trt_ray_bench.engines._trt_api import attach_progress


def _trt(version: str, monitor: bool = True):
    trt = types.SimpleNamespace(__version__=version)
    if monitor:
        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor
    return trt


class _Config:
    progress_monitor = None


def test_a_monitor_reports_the_phases_and_steps_of_a_build():
    notes = []
    config = _Config()
    m = attach_progress(_trt("10.3.0"), config, notes.append)
    assert m is not None and config.progress_monitor is m
    m.phase_start("Building engine", None, 3)
    m.phase_start("Tactic selection", "Building engine", 40)
    assert m.step_complete("Tactic selection", 9) is True  # True: the build goes on
    assert notes[-1] == "Building engine 0/3 > Tactic selection 10/40"
    m.phase_finish("Tactic selection")
    m.step_complete("Building engine", 0)
    assert notes[-1] == "Building engine 1/3"
    m.phase_finish("Building engine")
    assert notes[-1] == ""


def test_a_failing_display_never_fails_the_build():
    def broken(text):
        raise RuntimeError("display gone")

    m = attach_progress(_trt("11.0.0"), _Config(), broken)
    m.phase_start("Building engine", None, 1)
    assert m.step_complete("Building engine", 0) is True


def test_nothing_is_attached_below_tensorrt_10():
    config = _Config()
    assert attach_progress(_trt("8.6.1"), config, print) is None and config.progress_monitor is None
    assert attach_progress(_trt("10.0.1", monitor=False), config, print) is None  # a build without the class
    assert attach_progress(_trt("10.0.1"), object(), print) is None  # a config without the property

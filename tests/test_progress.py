"""The package logger and the progress display (``trt_ray_bench.progress``): levels for
-q / -v, library callers' ``log=`` callables, plain lines off a terminal and a line
redrawn in place on one."""

from __future__ import annotations

import logging
import time

import pytest

from trt_ray_bench import progress


@pytest.fixture(autouse=True)
def _restore():
    yield
    progress.configure(progress.NORMAL, live=False)


def test_levels_of_q_and_v(capsys):
    log = progress.LOGGER
    progress.configure(progress.QUIET)
    log.info("progress line")
    log.warning("a warning")
    assert capsys.readouterr().err == "a warning\n"
    progress.configure(progress.NORMAL)
    log.info("progress line")
    log.debug("debug line")
    assert capsys.readouterr().err == "progress line\n"
    progress.configure(progress.VERBOSE)
    log.debug("debug line")
    assert capsys.readouterr().err == "debug line\n"
    assert not progress.live()  # capsys's stderr is no terminal


def test_a_library_caller_gets_every_line_through_its_callable(capsys):
    got = []
    say = progress.say(got.append)
    say.info("a")
    say.warning("b")
    say.error("c")
    say.debug("d")  # debug lines are the logger's only
    assert got == ["a", "b", "c"] and capsys.readouterr().err == ""
    assert progress.say(say) is say


def test_off_a_terminal_a_spinner_is_one_plain_line(capsys, monkeypatch):
    progress.configure(progress.NORMAL, live=False)
    with progress.spinner("export   m 64x64") as s:  # over at once: no line (a refusal stays one line)
        s.note("ignored off a terminal")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "QUIET_S", 0.05)
    with progress.spinner("export   m 64x64"):  # still under way after QUIET_S: one plain line
        time.sleep(0.3)
    assert capsys.readouterr().err == "export   m 64x64 ...\n"
    line = progress.Line("phase", total=10)
    line.update(5, "m 5/10")
    line.close()
    assert capsys.readouterr().err == ""  # no live line: nothing drawn


def test_on_a_terminal_the_line_is_redrawn_and_log_lines_go_above_it(capsys):
    progress.configure(progress.NORMAL, live=True)
    line = progress.Line("repeat 0 alone", total=100, bar_format="{desc}  {percentage:3.0f}%")
    line.update(40, "cls 40/100")
    logging.getLogger("trt_ray_bench.test").info("a log line")  # a child logger: the package's handler
    line.update(80, "cls 80/100")
    line.close()
    err = capsys.readouterr().err
    assert "\rrepeat 0 alone  cls 40/100   40%" in err and "\rrepeat 0 alone  cls 80/100   80%" in err
    assert "a log line\n" in err and err.index("cls 40/100") < err.index("a log line") < err.index("cls 80/100")
    with progress.spinner("engine   m.onnx") as s:
        s.note("Building engine 1/3")
        time.sleep(0.35)
    err = capsys.readouterr().err
    assert "engine   m.onnx" in err and "Building engine 1/3" in err and " s" in err
    assert "..." not in err  # the plain line is for logs, not terminals


def test_durations():
    assert progress.duration(4.24) == "4.2 s" and progress.duration(75.3) == "1m15s"
    assert progress.duration(3 * 3600 + 120) == "3h02m" and progress.duration(float("nan")) == "?"

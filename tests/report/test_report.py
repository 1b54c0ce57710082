"""`trb report`: a real run, and the real H100 trees in tests/data/h100, made into a page
that headless Chromium renders (every figure decoded), a markdown variant whose links
are real PNG files, and one-line refusals of bad input."""

import base64
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from trt_ray_bench import results
from trt_ray_bench.report import build_report, figures_dir
from trt_ray_bench.results.schema import RUNS

H100 = Path(__file__).resolve().parents[1] / "data" / "h100"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SECTIONS = ["What was measured", "Environment and provenance", "Comparisons", "Diagnostics",
            "Explanations: what else differed", "Figures"]

#: what the page shows, read by the browser: every image's state, the visible headings
#: and tables (a heading or table hidden or of zero size does not count)
PAGE_STATE = """() => {
  const shown = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
                       return r.width > 0 && r.height > 0 && s.display !== 'none' && s.visibility !== 'hidden'; };
  return {
    images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, shown: shown(i),
                                            data: i.src.startsWith('data:image/png;base64,')})),
    figures: document.querySelectorAll('figure').length,
    h2: [...document.querySelectorAll('h2')].filter(shown).map(h => h.textContent),
    h3: [...document.querySelectorAll('h3')].filter(shown).map(h => h.textContent),
    tables: [...document.querySelectorAll('table')].filter(shown).map(t => t.innerText),
  };
}"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium): the page cannot be rendered")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def render(browser, html: Path, screenshot: Path = None) -> dict:
    """Open ``html`` as a user would and return what the page shows; every request the
    page made is listed under ``requests`` (a self-contained page makes none but itself)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(html.resolve().as_uri(), wait_until="load")
        state = page.evaluate(PAGE_STATE)
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    state["requests"] = [u for u in requests if not u.startswith("data:")]
    return state


def broken(state: dict) -> list:
    """Indices of the images the browser could not show."""
    return [i for i, im in enumerate(state["images"]) if not (im["complete"] and im["width"] > 0 and im["shown"])]


def figure_names(out: Path) -> list:
    """The figures written beside ``out``, without their number: ``latency-host``."""
    return [p.stem.split("-", 1)[1] for p in sorted(figures_dir(out).glob("*.png"))]


def section(html: str, title: str) -> str:
    """The text of one section of the page."""
    m = re.search(rf"<h2>{re.escape(title)}</h2>(.*?)</section>", html, re.S)
    assert m, f"no section {title!r}"
    return re.sub(r"<[^>]+>", " ", m.group(1))


# --- a real run, rendered in Chromium --------------------------------------------------

@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory, cls_onnx, det_onnx, ray_local) -> Path:
    """Two real models on ONNX Runtime, alone then together, with host telemetry."""
    from trt_ray_bench.cluster import make_plan, run_plan
    from trt_ray_bench.spec import spec_from_dict

    root = tmp_path_factory.mktemp("report-run")
    spec = spec_from_dict({
        "name": "report", "output": str(root / "results"), "schedule": "both",
        "models": [{"path": str(cls_onnx), "name": "cls", "options": {"threads": 1}},
                   {"path": str(det_onnx), "name": "det", "options": {"threads": 1}}],
        "timing": {"iterations": 30, "warmup": 3}, "telemetry": {"interval_s": 0.02},
    })
    out = run_plan(make_plan(spec), log=lambda s: None)
    assert set(out["tables"]["runs"]["status"]) == {"ok"}
    return Path(out["run_dir"])


@pytest.mark.ray
@pytest.mark.slow
def test_report_of_a_run_shows_every_figure_in_chromium(cpu_run, trb, browser, tmp_path):
    out = tmp_path / "page" / "report.html"
    code, stdout, err = trb("report", cpu_run, "--out", out)
    assert code == 0, err
    rid = results.load(cpu_run).run_ids[0]
    # what this data gives: host latency per model alone vs together, and one time axis
    # (no GPU time, no gap or clock sweep, no stages, no accuracy on ONNX Runtime CPU)
    assert figure_names(out) == ["latency-host", f"timeline-{rid}"]
    assert f"{out}  (2 figures" in stdout
    html = out.read_text()
    assert "CPU utilization" in html and "alone vs together" in html  # the captions say what is drawn

    state = render(browser, out, screenshot=tmp_path / "report.png")
    assert broken(state) == [] and len(state["images"]) == state["figures"] == 2
    assert all(im["data"] for im in state["images"])  # embedded, not linked
    # each embedded image is the PNG written beside the page, at its size
    widths = [Image.open(p).size[0] for p in sorted(figures_dir(out).glob("*.png"))]
    assert [im["width"] for im in state["images"]] == widths
    assert state["h2"] == SECTIONS
    assert {"Runs", "Alone vs together", "Per model"} <= set(state["h3"])
    vs = next(t for t in state["tables"] if "together_p50" in t)
    assert re.search(r"^cls\t", vs, re.M) and re.search(r"^det\t", vs, re.M)
    assert any("onnxruntime_version" in t for t in state["tables"])  # provenance shown
    assert state["requests"] == [out.resolve().as_uri()]  # self-contained: nothing else fetched
    shot = Image.open(tmp_path / "report.png")
    assert shot.format == "PNG" and shot.size[1] > 1500


@pytest.mark.ray
@pytest.mark.slow
def test_the_browser_check_sees_a_broken_figure(cpu_run, browser, tmp_path):
    """Negative control: the same page with one embedded image corrupted is caught by
    the same check, so the check above can fail."""
    out = build_report(cpu_run, tmp_path / "ok.html")
    html = out.read_text()
    assert broken(render(browser, out)) == []
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == 2
    bad = tmp_path / "bad.html"
    bad.write_text(html.replace(uris[1], base64.b64encode(b"\x89PNG\r\n\x1a\n not a png").decode()))
    assert broken(render(browser, bad)) == [1]


@pytest.mark.ray
@pytest.mark.slow
def test_a_cpu_only_report_speaks_of_no_gpu(cpu_run, tmp_path):
    """A real ONNX Runtime run on the CPU (two unrelated models): the page names only what
    the data has: no GPU time, no CUDA events, no GPU, MPS or SM clock in any note or
    caption; and the per-model table has no baseline (cls and det are not variants)."""
    out = build_report(cpu_run, tmp_path / "r.md", "md")
    text = out.read_text()
    words = [w for w in ("GPU", "gpu", "CUDA", "MPS", "SM clock", "NVML", "TensorRT") if w in text]
    assert words == [], [text[max(0, text.index(w) - 120):text.index(w) + 40] for w in words]
    table = text[text.index("### Per model"):text.index("## Diagnostics")]
    head = next(x for x in table.splitlines() if x.startswith("| "))
    assert "speedup" not in head and "verdict" not in head and "| cls |" in table and "| det |" in table
    assert "No speedup: these models are not variants of one model" in table


# --- the real H100 trees ---------------------------------------------------------------

def test_h100_alone_together_draws_gpu_telemetry_and_explains(browser, tmp_path):
    out = build_report(H100 / "gpu_alone_together", tmp_path / "r.html")
    runs = results.load(H100 / "gpu_alone_together", samples=False, telemetry=False).run_ids
    names = figure_names(out)
    assert [f"timeline-{rid}" for rid in runs] == [n for n in names if n.startswith("timeline-")]
    assert {"latency-host", "latency-gpu", "mps", "stages-gpu"} <= set(names)
    html = out.read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)
    timeline = [c for c in captions if "timeline-" in c]
    assert len(timeline) == 2 and all("GPU clock, GPU utilization, GPU power" in c for c in timeline)
    said = section(html, "Explanations: what else differed")
    assert "Alone vs together" in said and "MPS" in said
    assert "GPU utilization" in said and "SM clock" in said and "power" in said
    assert "yolov8n-cls together vs alone, MPS off: p50 +796 %" in said
    state = render(browser, out)
    assert broken(state) == [] and len(state["images"]) == len(names)


def test_h100_gap_study_draws_the_gap_curve(tmp_path):
    out = build_report(H100 / "seed001_gap_study", tmp_path / "r.html")
    names = figure_names(out)
    assert "gap-sweep" in names and "clocks-mode" in names
    html = out.read_text()
    gap = next(c for c in re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S) if "gap-sweep" in c)
    assert "one line per clocks_mode" in gap and "mean GPU clock" in gap
    said = section(html, "Explanations: what else differed")
    assert "Clock mode" in said and "SM clock 1980 → 1830 MHz" in said
    assert "GPU utilization" in said


def test_markdown_links_real_png_files(trb, tmp_path):
    out = tmp_path / "md" / "report.md"
    code, stdout, err = trb("report", H100 / "seed001_gap_study", "--out", out)
    assert code == 0, err
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(list(figures_dir(out).glob("*.png"))) >= 5
    for link in links:
        path = out.parent / link
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100
            im.verify()
    assert "data:image" not in text
    assert "## Explanations: what else differed" in text and "| model |" in text


# --- bad input and atomic writes ---------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of one real run of the gap study, in an experiment folder tests may write into."""
    run = sorted((H100 / "seed001_gap_study").iterdir())[0]
    assert (run / "runs.parquet").is_file()
    shutil.copytree(run, tmp_path / "gap" / run.name)
    return tmp_path / "gap"


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize("args, says", [
    (["{tmp}/missing"], "no such results folder"),
    (["{tmp}/empty"], "no runs found"),
    (["{tree}", "--format", "pdf"], "--format: unknown format 'pdf'"),
    (["{tree}", "--out", "{tmp}/r.pdf"], "unknown suffix '.pdf'"),
    (["{tree}", "--out", "{tmp}/afile/report.html"], "is not a folder"),
    (["{tree}", "--out", "{tree}"], "is a folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(trb, tmp_path, tree, args, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    before = _files(tmp_path)
    code, out, err = trb("report", *[a.format(tmp=tmp_path, tree=tree) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("trb: error: ") and says in err
    assert _files(tmp_path) == before


def test_writes_are_atomic(tree, monkeypatch):
    out = build_report(tree)
    assert out == tree / "report.html"
    (figures_dir(out) / "99-stale.png").write_bytes(b"old")
    page = out.read_bytes()
    from trt_ray_bench.report import build

    def fail(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "to_html", fail)
    with pytest.raises(RuntimeError):
        build_report(tree)
    # the failed attempt left the earlier report as it was, and no temporary folder
    assert out.read_bytes() == page and (figures_dir(out) / "99-stale.png").exists()
    assert not [p for p in tree.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    build_report(tree)  # a new report replaces the figures as a whole
    assert not (figures_dir(out) / "99-stale.png").exists() and "gap-sweep" in figure_names(out)


def _with_energy(src: Path, dst: Path) -> Path:
    """The real runs of ``src`` written again under ``dst`` with the energy of each window
    from their recorded NVML power (``results.window_energy``), as a run writes it now."""
    from trt_ray_bench.results import RunWriter, window_energy

    r = results.load(src)
    for rid in r.run_ids:
        one = r.only(rid)
        runs = one.runs.reset_index(drop=True)
        energy = window_energy(runs, one.telemetry)
        runs = pd.concat([runs, energy], axis=1)
        spec = (src / rid / "spec.yaml").read_text() if (src / rid / "spec.yaml").is_file() else "name: x\n"
        w = RunWriter(dst / rid)
        w.finish({"runs": runs[[c for c in runs.columns if c in RUNS.names]], "samples": one.samples,
                  "telemetry": one.telemetry}, spec)
    return dst


def test_energy_per_inference_is_drawn_compared_and_explained(tmp_path):
    from trt_ray_bench.results import alone_vs_together

    tree = _with_energy(H100 / "gpu_alone_together", tmp_path / "tree")
    runs = results.load(tree, samples=False, telemetry=False).runs
    assert set(runs.energy_source) == {"nvml_power_integral"} and runs.energy_mj_per_inf.notna().all()
    out = build_report(tree, tmp_path / "r.html")
    assert "energy-latency" in figure_names(out)
    html = out.read_text()
    cap = next(c for c in re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S) if "energy-latency" in c)
    assert "one point per model and condition" in cap and "energy from nvml_power_integral" in cap
    said = section(html, "Explanations: what else differed")
    assert re.search(r"energy [\d.]+ → [\d.]+ mJ per inference", said) and "mJ/inf" in said
    table = alone_vs_together(runs)
    row = table.set_index(["model", "mps"]).loc[("yolov8n-cls", False)]
    ok = runs[(runs.model == "yolov8n-cls") & (runs.mps == False) & (runs.phase == "alone")]  # noqa: E712
    assert row["alone_mj_per_inf"] == pytest.approx(ok.energy_mj_per_inf.mean())


def test_a_report_without_energy_has_no_energy_figure(tmp_path):
    out = build_report(H100 / "seed001_gap_study", tmp_path / "r.html")
    assert "energy-latency" not in figure_names(out)

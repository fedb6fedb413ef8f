"""The HTML report: one self-contained page, opened in headless Chromium (Debian's
chromium package driven by Playwright, no browser download) with networking blocked; its
plots draw, its table sorts, ties on the accuracy axis look like ties, its size is bounded
and no row's text becomes markup."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_rnn_harness.analysis.figures import (
    MAX_PLOTTED_VALUES,
    MIN_RMSE_SPAN_TIES,
    RMSE_TIE,
    downsampled,
    pareto_figure,
)
from edge_rnn_harness.analysis.report_html import MAX_REPORT_BYTES, render_html
from edge_rnn_harness.core.plan import bench_name
from edge_rnn_harness.core.results import conformed, read_results
from tests.conftest import ROOT, run_cli, write_run

#: where the browser test leaves its screenshot (CI keeps the folder as an artifact)
ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
FIVE = ("torch", "onnxruntime", "tflite", "openvino", "ncnn")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Debian's chromium package is not installed (.ci/run installs it)")
    return found


@pytest.fixture
def browser_page() -> Iterator[tuple[object, list[str], list[str]]]:
    """A Chromium page whose every non-file request is aborted and recorded, and whose
    console errors and page errors are collected."""
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        network: list[str] = []
        errors: list[str] = []

        def route(request_route: object) -> None:
            url = request_route.request.url  # type: ignore[attr-defined]
            if url.startswith("file:"):
                request_route.continue_()  # type: ignore[attr-defined]
            else:
                network.append(url)
                request_route.abort()  # type: ignore[attr-defined]

        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page, network, errors
        browser.close()


def _with_rows(path: Path, medians_ms: dict[str, float | None]) -> Path:
    """The run at `path` with a row more per backend (its median latency as given; None:
    not measured), rewritten in place."""
    frame = read_results(path)
    extra = []
    for backend, median in medians_ms.items():
        row = frame.iloc[0].copy()
        row["backend"] = backend
        row["latency_median_ms"] = row["latency_p90_ms"] = median
        extra.append(row)
    pd.concat([frame, pd.DataFrame(extra)]).to_csv(path, index=False)
    return path


def _tied_run(tmp_path: Path) -> Path:
    """Five fp32 rows whose RMSEs differ by floating-point order only (2.3e-8 GW on 0.0596,
    as five runtimes give), with their pyperf values."""
    path = write_run(tmp_path / "tied.csv", seed=4,
                     onnxruntime={"rmse": 0.0596000, "dataset": "elecdemand"},
                     openvino={"rmse": 0.0596000 + 2.3e-8, "dataset": "elecdemand"})
    _with_rows(path, {"torch": 0.12, "tflite": 0.05, "ncnn": 0.06})
    frame = read_results(path)
    frame.loc[2:, "rmse"] = 0.0596 + np.arange(3) * 1e-8
    frame.to_csv(path, index=False)
    return path


def test_the_page_works_offline_in_chromium(tmp_path: Path, browser_page: tuple) -> None:
    """Loaded with networking blocked: no request leaves the file, no console error, every
    plot drew, sorting reorders the rows, the RMSE axis is wide, and a screenshot is kept."""
    page, network, errors = browser_page
    history = tmp_path / "store"
    for index in range(6):
        stamp = {"timestamp": f"2026-10-{index + 1:02d}T00:00:00+00:00"}
        run = write_run(tmp_path / f"h{index}.csv", seed=50 + index, onnxruntime=stamp,
                        openvino=stamp)
        assert run_cli("history", "add", str(history), str(run)).returncode == 0
    base = write_run(tmp_path / "base.csv", seed=1)
    cand = _with_rows(write_run(tmp_path / "cand.csv", seed=2, factor=1.02),
                      {"tflite": 0.09, "ncnn": None, "torch": 0.011})
    html = tmp_path / "report.html"
    result = run_cli("report", str(cand), "--html", str(html), "--baseline", str(base),
                     "--history", str(history))
    assert result.returncode == 0, result.stderr
    assert "self-contained" in result.stdout
    page.goto(html.as_uri(), wait_until="load")
    assert network == [] and errors == []
    plots = page.eval_on_selector_all("figure[data-plot]", """figures => figures.map(f => {
        const svg = f.querySelector('svg'); const box = svg.getBBox();
        return [f.dataset.plot, svg.querySelectorAll('path, rect, use').length,
                box.width, box.height]; })""")
    names = [name for name, *_ in plots]
    assert {"distribution", "latency", "memory_size", "pareto"} <= set(names)
    assert any(name.startswith("trend-") for name in names)
    for name, marks, width, height in plots:
        assert marks > 10 and width > 100 and height > 100, (name, marks, width, height)
    assert page.locator("#baseline tbody tr").count() >= 2

    headers = page.eval_on_selector_all("#summary th", "cells => cells.map(c => c.innerText)")
    column = headers.index("median ms")

    def medians() -> list[str]:
        return page.eval_on_selector_all(
            "#summary tbody tr", f"rows => rows.map(r => r.cells[{column}].dataset.sort)")

    header = page.locator("#summary th button", has_text="median ms")
    before = medians()
    header.click()
    ascending = medians()
    numbers = [float(v) for v in ascending[:-1]]
    assert ascending[-1] == "" and numbers == sorted(numbers) and len(numbers) == 4
    assert ascending != before
    header.click()
    descending = medians()
    assert [float(v) for v in descending[:-1]] == sorted(numbers, reverse=True)
    assert descending[-1] == ""  # an empty cell sorts last both ways
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_tied_rmse_shows_on_one_level_in_the_page(tmp_path: Path,
                                                  browser_page: tuple) -> None:
    """Five fp32 rows 2.3e-8 GW apart: the page's accuracy axis spans at least
    MIN_RMSE_SPAN_TIES tie margins, so their spread is under a millionth of its height."""
    page, _, errors = browser_page
    run = _tied_run(tmp_path)
    html = tmp_path / "tied.html"
    assert run_cli("report", str(run), "--html", str(html)).returncode == 0
    page.goto(html.as_uri(), wait_until="load")
    low = float(page.get_attribute("figure[data-plot=pareto]", "data-y-min"))
    high = float(page.get_attribute("figure[data-plot=pareto]", "data-y-max"))
    rmse = read_results(run)["rmse"].astype(float)
    assert high - low >= MIN_RMSE_SPAN_TIES * RMSE_TIE * rmse.max() * 0.999
    assert (rmse.max() - rmse.min()) / (high - low) < 1e-4
    assert low < rmse.min() and rmse.max() < high and errors == []


def test_the_accuracy_axis_never_zooms_into_noise_but_shows_real_differences() -> None:
    """The figure itself: tied RMSEs get the minimum span; RMSEs 10% apart get their own
    range (the axis is widened, never narrowed)."""
    tied = conformed(pd.DataFrame({
        "model": ["lstm"] * 5, "variant": ["fp32"] * 5, "backend": list(FIVE),
        "rmse": 0.0596 + np.arange(5) * 5e-9, "latency_median_ms": [0.12, 0.03, 0.05, 0.05,
                                                                     0.06]}))
    low, high = pareto_figure(tied, "GW").axes[0].get_ylim()
    assert high - low == pytest.approx(MIN_RMSE_SPAN_TIES * RMSE_TIE * 0.0596, rel=1e-3)
    apart = tied.assign(rmse=[0.0596, 0.0596, 0.0656, 0.0596, 0.0600])
    low, high = pareto_figure(apart, "GW").axes[0].get_ylim()
    assert low < 0.0596 and high > 0.0656 and high - low < 0.01


def _hundred_cases(tmp_path: Path) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """100 ok cases (20 models x 5 backends), each with 6 processes x 3,000 values."""
    rng = np.random.default_rng(0)
    rows, values = [], {}
    template = read_results(write_run(tmp_path / "t.csv", seed=1)).iloc[0]
    for index in range(100):
        row = template.copy()
        row["model"], row["backend"] = f"model{index // 5}", FIVE[index % 5]
        row["latency_median_ms"] = row["latency_p90_ms"] = 0.03 + index * 1e-3
        rows.append(row)
        values[bench_name(row.to_dict())] = [2.5e-5 * rng.lognormal(0, 0.1, 3000)
                                             for _ in range(6)]
    return conformed(pd.DataFrame(rows)), values


def test_a_hundred_case_report_stays_under_its_size_bound(tmp_path: Path) -> None:
    frame, values = _hundred_cases(tmp_path)
    page = render_html(frame, tmp_path / "big.csv", values)
    size = len(page.encode())
    assert size < MAX_REPORT_BYTES, f"{size / 2**20:.1f} MiB"
    assert page.count("<figure") >= 3
    assert "http" not in page.replace("http://www.w3.org/", "")  # no URL but SVG's names


def test_downsampling_keeps_the_extremes_and_the_quantiles() -> None:
    values = np.random.default_rng(1).lognormal(0, 0.5, 50_000)
    kept = downsampled(values)
    assert kept.size == MAX_PLOTTED_VALUES
    assert kept[0] == values.min() and kept[-1] == values.max()
    for q in (0.1, 0.5, 0.9, 0.99):
        assert np.quantile(kept, q) == pytest.approx(np.quantile(values, q), rel=0.01)
    few = values[:10]
    assert downsampled(few).tolist() == sorted(few.tolist())


def test_no_row_text_becomes_markup(tmp_path: Path) -> None:
    """A reason holding a script tag or a Markdown link shows as text: no script, no link."""
    run = write_run(tmp_path / "r.csv", seed=1, openvino={
        "status": "failed", "reason": "<script>alert(1)</script> [x](javascript:alert(1))"})
    html = tmp_path / "r.html"
    assert run_cli("report", str(run), "--html", str(html)).returncode == 0
    text = html.read_text()
    assert "<script>alert" not in text
    assert "<a " not in text and 'href="javascript' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1))" in text
    assert text.count("<script>") == 1  # the page's own sorting script


def test_markdown_and_html_show_the_same_figures(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r.csv", seed=1)
    result = run_cli("report", str(run), "--out", str(tmp_path / "md"), "--html",
                     str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "md" / "report.md").read_text()
    page = (tmp_path / "r.html").read_text()
    frame = read_results(run)
    for value in frame["latency_median_ms"]:  # (tabulate drops a trailing zero)
        assert f"{value:.4f}".rstrip("0") in markdown and f"{value:.4f}" in page
    for stem in ("latency", "memory_size", "pareto"):
        assert f"]({stem}.png)" in markdown and f'data-plot="{stem}"' in page


@pytest.mark.parametrize("args, message", [
    ([], "give --out DIR"),
    (["--out", "X", "--baseline", "b.csv"], "add --html FILE"),
    (["--html", "r.html", "--history", "nowhere"], "not a run store"),
])
def test_report_options_are_checked_in_one_line(tmp_path: Path, args: list[str],
                                                message: str) -> None:
    run = write_run(tmp_path / "r.csv", seed=1)
    result = run_cli("report", str(run), *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""How heavy the HTML report is and how fast a browser shows it: writes the page of a run
(`harness report RUN.csv --html`), then opens it in headless Chromium (Debian's chromium,
driven by Playwright, networking blocked) `--repeat` times, timing from navigation to the
load event and to every plot drawn.

    python benchmarks/report_render.py RUN.csv [--history STORE] [--repeat 5]

Prints the file's size and the median and range of both times in seconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--history", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("report_render: Debian's chromium is not installed")
    page_path = Path(tempfile.mkdtemp()) / "report.html"
    command = [sys.executable, "-m", "edge_rnn_harness", "report", str(args.results),
               "--html", str(page_path),
               *(["--history", str(args.history)] if args.history else [])]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    written_s = time.perf_counter() - start
    loads, drawn = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(args.repeat):
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith("file:") else route.abort())
            start = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="load")
            loads.append(time.perf_counter() - start)
            page.wait_for_function("""() => [...document.querySelectorAll('figure svg')]
                .every(svg => svg.getBBox().width > 0)""")
            drawn.append(time.perf_counter() - start)
            page.close()
        browser.close()
    size = page_path.stat().st_size
    print(f"report.html: {size / 1024:,.0f} KiB, written in {written_s:.1f} s "
          f"(harness report, Python start included)")
    for name, samples in (("load event", loads), ("every plot drawn", drawn)):
        print(f"{name}: median {statistics.median(samples):.3f} s "
              f"({min(samples):.3f}-{max(samples):.3f}) over {len(samples)} loads")


if __name__ == "__main__":
    main()

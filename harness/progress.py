"""Progress of a run on the terminal: a rich progress bar and one line per finished case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from edge_rnn_harness.plan import Case
from edge_rnn_harness.results import is_finite_number


class RichReporter:
    """The runner's Reporter for a terminal (degrades to plain lines when not a TTY)."""

    def __init__(self, console: Console, total: int) -> None:
        self._console = console
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=console, transient=True)
        self._task = self._progress.add_task("starting", total=total)

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def case_started(self, index: int, case: Case, stage: str) -> None:
        """Show which case is in which stage."""
        self._progress.update(self._task, description=f"{stage} {case.label}")

    def case_finished(self, index: int, case: Case, row: Mapping[str, Any]) -> None:
        """Print one line for the finished case and advance the bar."""
        status = row["status"]
        if status == "ok" and is_finite_number(row["latency_median_ms"]):
            detail = (f"median {row['latency_median_ms']:.4f} ms, "
                      f"max abs err {row['max_abs_err']:.1e}"
                      + (f"; {row['reason']}" if row["reason"] else ""))
        else:
            detail = str(row["reason"] or "")
        style = {"ok": "green", "failed": "red"}.get(str(status), "yellow")
        self._console.print(f"[{style}]{status:>7}[/] {escape(f'{case.label}: {detail}')}")
        self._progress.advance(self._task)

    def notice(self, text: str) -> None:
        """Print a one-line notice."""
        self._console.print(f"[yellow]note[/]: {escape(text)}")

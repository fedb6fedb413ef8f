"""Progress of a run on the terminal: a rich progress bar and one line per finished case
(a fleet run: one bar per device); on a device, optionally a JSON-lines progress file the
workstation follows."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
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

from edge_rnn_harness.core.plan import Case, case_label
from edge_rnn_harness.core.results import is_finite_number


def case_line(label: str, row: Mapping[str, Any]) -> str:
    """One line (rich markup) for a finished case: status, label, median and error or the
    reason."""
    status = row["status"]
    if status == "ok" and is_finite_number(row["latency_median_ms"]):
        detail = (f"median {float(row['latency_median_ms']):.4f} ms, "
                  f"max abs err {float(row['max_abs_err']):.1e}"
                  + (f"; {row['reason']}" if row["reason"] else ""))
    else:
        detail = str(row["reason"] or "")
    style = {"ok": "green", "failed": "red"}.get(str(status), "yellow")
    return f"[{style}]{status:>7}[/] {escape(f'{label}: {detail}')}"


class ProgressFile:
    """Appends one JSON line per case stage ({"index", "stage", "label"}; a finished case
    also has "status") to a file, flushed at once: what a workstation follows over SSH."""

    def __init__(self, path: Path) -> None:
        """Start `path` empty. OSError naming the file (`filename`) when it cannot."""
        self.path = path
        with self._naming_the_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def event(self, index: int, case: Case, stage: str, **extra: object) -> None:
        """Append one event. OSError naming the file (`filename`) when it cannot."""
        with self._naming_the_file(), self.path.open("a") as handle:
            handle.write(json.dumps({"index": index, "stage": stage, "label": case.label,
                                     **extra}) + "\n")

    @contextlib.contextmanager
    def _naming_the_file(self) -> Iterator[None]:
        """A failed write (a full disk: no file name in the error) re-raised naming this
        file, so the message says which file failed."""
        try:
            yield
        except OSError as error:
            if error.filename is not None:
                raise
            raise OSError(error.errno, error.strerror, str(self.path)) from error


class RichReporter:
    """The runner's Reporter for a terminal (degrades to plain lines when not a TTY)."""

    def __init__(self, console: Console, total: int,
                 progress_file: ProgressFile | None = None) -> None:
        self._console = console
        self._file = progress_file
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
        if self._file:
            self._file.event(index, case, stage)

    def case_finished(self, index: int, case: Case, row: Mapping[str, Any]) -> None:
        """Print one line for the finished case and advance the bar."""
        self._console.print(case_line(case.label, row))
        self._progress.advance(self._task)
        if self._file:
            self._file.event(index, case, "finished", status=row["status"])

    def notice(self, text: str) -> None:
        """Print a one-line notice."""
        self._console.print(f"[yellow]note[/]: {escape(text)}")


class FleetProgress:
    """Progress of a fleet run: one bar per device showing its stage, one line per row as
    it arrives from any device."""

    def __init__(self, console: Console, jobs: list) -> None:
        self._console = console
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=console, transient=True)
        self._tasks = {job.device.name: self._progress.add_task(
            f"{job.device.name}: connecting", total=len(job.cases)) for job in jobs}

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def notify(self, job: Any, event: str) -> None:
        """A device's job changed: "stage", "done" or "note:<text>"."""
        name = job.device.name
        if event.startswith("note:"):
            self._console.print(f"[dim]{escape(name)}[/]: {escape(event[5:])}")
        else:
            self._progress.update(self._tasks[name],
                                  description=escape(f"{name}: {job.stage}"))

    def row(self, row: Mapping[str, Any]) -> None:
        """A row arrived (measured on a device, or written for a case that was not)."""
        self._console.print(case_line(case_label(row), row))
        name = str(row.get("device_name") or "")
        if name in self._tasks:
            self._progress.advance(self._tasks[name])

"""The one rule for a row's status.

A case that did not measure gets its status where it stopped (`skipped`, `unsupported`,
`failed`, each with its reason). A measured case gets a finding from each of its checks, and
`row_status` decides: the first check in `CHECKS` that found a problem gives the status
and reason; the notes of the checks that passed (e.g. NaN the reference held) follow the
reason. `ok` means every check passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OK, FAILED, SKIPPED, UNSUPPORTED, INVALID = "ok", "failed", "skipped", "unsupported", "invalid"
#: every status a row can have
STATUSES = (OK, FAILED, SKIPPED, UNSUPPORTED, INVALID)

#: the checks of a measured case, in precedence order: outputs against the reference
#: (failed for fp32, invalid for a variant or a disputed reference); forecasts that are no
#: result (constant, NaN, worse than persistence: invalid); a variant's accuracy policy
#: against its backend's fp32 (invalid); throttling during the case (invalid); then checks
#: that are only ever notes: the energy step (a meter that failed leaves the latency row as
#: it was) and a --target-precision not reached
CHECKS = ("parity", "forecasts", "accuracy_policy", "throttle", "energy", "precision")


@dataclass(frozen=True)
class Finding:
    """One check's finding: `ok` (with an optional note) or the status it calls for and
    why."""

    check: str
    status: str = OK
    reason: str = ""

    def __post_init__(self) -> None:
        if self.check not in CHECKS:
            raise ValueError(f"unknown check {self.check!r}; one of {', '.join(CHECKS)}")
        if self.status not in (OK, FAILED, INVALID):
            raise ValueError(f"a check finds ok, failed or invalid, not {self.status!r}")


def row_status(findings: Iterable[Finding]) -> dict[str, str]:
    """{"status", "reason"} of a measured case from its checks' findings."""
    ordered = sorted(findings, key=lambda finding: CHECKS.index(finding.check))
    problem = next((finding for finding in ordered if finding.status != OK), None)
    notes = [finding.reason for finding in ordered if finding.status == OK and finding.reason]
    if problem is None:
        return {"status": OK, "reason": "; ".join(notes)}
    return {"status": problem.status, "reason": "; ".join([problem.reason, *notes])}


#: the words that mark the one skip a run may end with and still succeed: the runtime is not
#: installed on the machine (a device without a runtime is a choice, not a fault)
_NOT_INSTALLED = " is not installed ("


def not_installed(module: str, detail: str) -> str:
    """The skip reason for a runtime that is not installed (its module and the import
    error): the one reason `failed_run` forgives."""
    return f"{module}{_NOT_INSTALLED}{detail})"


def failed_run(row: Mapping[str, Any]) -> bool:
    """True for a row that makes a run exit 1: `failed`, `invalid`, or `skipped` for any
    reason but its runtime not being installed (a board down, a farm place held by someone
    else, an artifact the bundle lacks, a device too hot to start). `ok` and `unsupported`
    (the backend does not offer the variant) do not."""
    status = row.get("status")
    if status in (FAILED, INVALID):
        return True
    return status == SKIPPED and not is_not_installed(row.get("reason"))


def is_not_installed(reason: object) -> bool:
    """Whether a skip reason is the one `not_installed` writes (a runtime not installed)."""
    return _NOT_INSTALLED in str(reason or "")

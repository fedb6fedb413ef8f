"""`harness run`'s typed request: the command line and a --request JSON file (what a fleet
run sends each device) give the same request; a bad file is one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edge_rnn_harness.cli.main import build_parser, main
from edge_rnn_harness.cli.run_request import RunRequest


def _parsed(*argv: str) -> RunRequest:
    return RunRequest.from_namespace(build_parser().parse_args(["run", *argv]))


def test_the_request_has_a_field_per_option_with_its_default() -> None:
    args = build_parser().parse_args(["run"])
    options = set(vars(args)) - {"command", "handler", "request"}
    assert options == {item.name for item in dataclasses.fields(RunRequest)}
    assert _parsed() == RunRequest()


def test_a_request_travels_as_json_and_reads_back_the_same(tmp_path: Path) -> None:
    request = _parsed("--backends", "onnxruntime,ncnn", "--threads", "1,2", "--batch", "1,8",
                      "--seq-len", "24,48", "--scenario", "single_stream,batch", "--profile",
                      "quick", "--atol", "1e-4", "--tune", "onnxruntime.graph_level=basic",
                      "--no-accuracy", "--power", "none", "--cooldown", "1.5",
                      "--max-start-temp", "70", "--cpu-freq", "600000,1200000",
                      "--case-timeout", "60", "--model", "lstm")
    sent = request.for_device(bundle="/dev/b", out="/dev/r.csv", device_name="pi5")
    path = tmp_path / "request.json"
    path.write_text(json.dumps(sent))
    read = RunRequest.from_json(path)
    device_fields = [item.name for item in dataclasses.fields(RunRequest)
                     if item.metadata["device"]]
    assert {name: getattr(read, name) for name in device_fields} == \
        {name: getattr(request, name) for name in device_fields}
    assert (read.bundle, read.out, read.device_name) == (Path("/dev/b"), Path("/dev/r.csv"),
                                                         "pi5")
    assert "weights_dir" not in sent and "on" not in sent  # the host's own stay here


@pytest.mark.parametrize("content, message", [
    ('{"threads": [1000000000]}', "threads: 1000000000 is not a whole number from 1 to 1,024"),
    ('{"nope": 1}', "unknown option 'nope'"),
    ('{"batch": "8"}', "batch: is not a non-empty list"),
    ('{"backends": null}', "backends must not be null"),
    ('{"no_accuracy": 1}', "no_accuracy: is not a bool"),
    ('{"case_timeout": 1e400}', "case_timeout"),
    ('{"device_name": "a b"}', "device_name: 'a b' is not a plain name"),
    ('{"out": "a\\u0000b"}', "out:"),
    ('[1, 2]', "is not a JSON object of run options"),
    ('{"threads": [1,', "is not JSON"),
])
def test_a_bad_request_file_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    path = tmp_path / "request.json"
    path.write_text(content)
    assert main(["run", "--request", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness run: --request "), err
    assert message in err


def test_a_request_file_is_given_alone(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "request.json"
    path.write_text("{}")
    assert main(["run", "--request", str(path), "--threads", "2"]) == 2
    assert "give it alone" in capsys.readouterr().err


def test_a_request_file_runs_a_bundle(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    path = tmp_path / "request.json"
    path.write_text(json.dumps(_parsed("--backends", "onnxruntime", "--profile", "quick",
                                       "--model", "tiny").for_device(
        bundle=str(tiny_bundle), out=str(out), device_name="dev1")))
    assert main(["run", "--request", str(path)]) == 0
    from edge_rnn_harness.core.results import read_results

    frame = read_results(out)
    assert list(frame["status"]) == ["ok"] and list(frame["device_name"]) == ["dev1"]


@pytest.mark.parametrize("command, request_class", [
    ("export", "export.ExportRequest"), ("train", "train.TrainRequest"),
    ("show", "show.ShowRequest"), ("report", "report.ReportRequest"),
    ("compare", "compare.CompareRequest"), ("gate", "gate.GateRequest"),
    ("ab", "ab.AbRequest"), ("tune", "tune.TuneRequest"), ("devices", "devices.DevicesRequest"),
])
def test_every_command_has_a_typed_request_with_a_field_per_option(
        command: str, request_class: str) -> None:
    """Each command's request dataclass has one field per option of its parser (the gate's
    thresholds gathered in one field), with the parser's defaults."""
    import importlib

    from edge_rnn_harness.cli.options import request_from
    from edge_rnn_harness.core.metrics import judged_metrics

    module, name = request_class.split(".")
    cls = getattr(importlib.import_module(f"edge_rnn_harness.cli.{module}"), name)
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    options = {action.dest for action in subparser._actions if action.dest != "help"}
    for action in subparser._actions:  # an action's own options (devices setup/fetch)
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict):
                options |= {a.dest for a in action.choices[sub]._actions if a.dest != "help"}
    gated = {metric.threshold_dest for metric in judged_metrics()}
    fields = {item.name for item in dataclasses.fields(cls)}
    if options & gated:
        assert gated <= options and "thresholds" in fields
        options = (options - gated) | {"thresholds"}
    assert fields == options
    required = {"show": ["r.csv"], "report": ["r.csv", "--out", "d"], "compare": ["a", "b"],
                "gate": ["a", "b"], "ab": ["--bundle", "b"], "tune": ["--backend", "ncnn"],
                "train": ["--model", "lstm"], "export": ["--out", "d"]}.get(command, [])
    request = request_from(cls, parser.parse_args([command, *required]),
                           **({"thresholds": {}} if "thresholds" in fields else {}))
    assert isinstance(request, cls)

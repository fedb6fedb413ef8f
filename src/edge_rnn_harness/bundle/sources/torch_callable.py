"""A PyTorch module brought as `package.module:callable`; the eager module is its reference.

The harness process never runs the user's code: its identity and parameter count come from
a probe child (this module is also a child program:
`python -P -m edge_rnn_harness.bundle.sources.torch_callable TARGET OUT`) under the
case timeout, so a callable that hangs, raises, exits or crashes is one line and exit 2;
the export and measurement children import it again themselves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_rnn_harness.backends.base import Backend, Calibration, Signature
from edge_rnn_harness.backends.torch_ref import as_tuple, module_from_callable
from edge_rnn_harness.bundle.sources.base import INPUT_SEED, PARITY_WINDOWS, ModelSource, Window
from edge_rnn_harness.core.errors import ERROR_PREFIX
from edge_rnn_harness.core.launcher import child_argv, run_child


@dataclass
class TorchCallableSource(ModelSource):
    """`package.module:callable`: the callable returns (torch module, example input), the
    example a tensor or a tuple of tensors with batch 1. Exported like the built-in models."""

    target: str
    name: str = ""
    #: longest the probe child may take to import and call the callable (s)
    timeout_s: float = 600.0
    _loaded: tuple | None = field(default=None, repr=False)
    _probed: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.target

    def load(self) -> tuple[Any, tuple]:
        """(module in eval mode, example tensors); ValueError naming what is wrong."""
        if self._loaded is None:
            self._loaded = module_from_callable(self.target)
        return self._loaded

    def probe(self) -> dict[str, Any]:
        """{"identity", "params"} from a child that imports and calls the callable, under
        `timeout_s`; ValueError with the one-line reason it failed."""
        if self._probed is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
                out = Path(tmp) / "probe.json"
                child = run_child(child_argv(__name__, self.target, out),
                                  self.timeout_s, "importing and calling it")
                if not child.ok:
                    reason = child.reason if child.reason.startswith("--model") else \
                        f"--model {self.target}: {child.reason}"
                    raise ValueError(reason)
                self._probed = json.loads(out.read_text())
        return self._probed

    def compute_identity(self) -> str:
        return self.probe()["identity"]

    def describe(self) -> dict[str, Any]:
        """The target and the probe's result (so a child need not probe again)."""
        return {"kind": "torch", "target": self.target, "probed": self.probe()}

    def reference(self) -> tuple[Signature, list[Window]]:
        """The example input plus seeded random windows of its shapes, run eagerly."""
        import torch

        module, examples = self.load()
        rng = np.random.default_rng(INPUT_SEED)
        names = [f"input_{i}" for i in range(len(examples))]
        inputs = [[t.numpy() for t in examples]] + [
            [rng.standard_normal(tuple(t.shape)).astype(np.float32) for t in examples]
            for _ in range(PARITY_WINDOWS - 1)]
        windows = []
        for arrays in inputs:
            with torch.inference_mode():
                outputs = as_tuple(module(*[torch.from_numpy(a) for a in arrays]))
            windows.append((dict(zip(names, arrays)),
                            {f"output_{i}": o.numpy() for i, o in enumerate(outputs)}))
        signature = Signature(dict(zip(names, inputs[0])), tuple(windows[0][1]))
        return signature, windows

    def export(self, backend: type[Backend], signature: Signature, variant: str,
               out_dir: Path, calibration: Calibration | None = None) -> Path:
        return backend.export(self.load()[0], signature, variant, out_dir, calibration)

    def params(self) -> int | None:
        return int(self.probe()["params"])


def describe_callable(target: str) -> dict[str, Any]:
    """Import and call `target` here: its identity (a hash of the target, the state dict
    and the example shapes) and parameter count. Runs the user's code: the probe child's."""
    module, examples = module_from_callable(target)
    digest = hashlib.sha256(target.encode())
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps([list(t.shape) for t in examples]).encode())
    return {"identity": digest.hexdigest(),
            "params": int(sum(p.numel() for p in module.parameters()))}


def main(argv: list[str]) -> int:
    """The probe child: write describe_callable(TARGET) to OUT; on any failure of the
    user's code (an exception, sys.exit) one `HARNESS-ERROR:` line and exit 2."""
    import sys

    target, out = argv
    try:
        described = describe_callable(target)
    except ValueError as error:  # the harness's own words on what is wrong
        print(ERROR_PREFIX + " ".join(str(error).split()), file=sys.stderr)
        return 2
    except SystemExit as error:
        print(f"{ERROR_PREFIX}--model {target}: it called sys.exit({error.code!r})",
              file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 -- the user's code may raise anything
        message = " ".join(str(error).split())[:300]
        print(f"{ERROR_PREFIX}--model {target}: calling it raised "
              f"{type(error).__name__}: {message}", file=sys.stderr)
        return 2
    Path(out).write_text(json.dumps(described))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))


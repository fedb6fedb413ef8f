"""Bundles: a self-describing folder of exported models (manifest.json, artifacts with
sha256, reference windows, test split, calibration windows). Data only: nothing in a bundle
is unpickled or executed.

Sides: `reader` (read and verify a bundle) runs on the device and may import `core` and
`backends`; `export` (write a bundle, the export cache) and `sources` (where a model comes
from: registered, ONNX file, PyTorch callable) run on the host (import-linter contracts in
pyproject.toml).
"""

"""The `harness` command: one module per command, over the shared options in `options`.

Side: both (a device runs `run`, `show`, `backends`; the workstation every command).
Each command turns its argparse namespace into a typed request at its entrance; nothing
below this package sees argparse. May import every other package of the harness; no other
package imports this one (import-linter contract in pyproject.toml).
"""

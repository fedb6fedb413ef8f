"""What every side shares: the plan of cases, the results schema and its CSV file, the
metric and status definitions, precision variants, profiles, parity, percentile intervals,
errors, the terminal table and progress, and the one launcher of child programs.

Side: both (the device needs all of it). The bottom layer: may import the standard
library, numpy, pandas, rich and pyperf, never another package of the harness
(import-linter contracts in pyproject.toml).
"""

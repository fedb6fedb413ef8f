"""Facts of the board a case runs on: device identity, temperature and throttling, CPU
frequency and governor, power meters; every sysfs/procfs path and device command through
`devicefs`, so tests point it at a fake tree.

Side: device. May import `core` only (import-linter contracts in pyproject.toml).
"""

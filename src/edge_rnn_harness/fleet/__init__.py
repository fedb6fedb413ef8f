"""Runs on other machines: the device inventory, the SSH transport (asyncssh), fleet runs
that send a request to each device and merge their rows, and looking after devices
(`harness devices`).

Side: host, except `agent`, the device half of a remote run (one-shot commands run over
SSH), which imports only the device side. May import `core`, `bundle.reader` and the
device-side packages; never `cli` or `analysis` (import-linter contracts in pyproject.toml).
"""

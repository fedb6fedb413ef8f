"""Measuring cases on the device: the runner (a pyperf manager per case in a child), the
worker and the other child programs (interleave, energy, versus, callgrind), the one
clock, the one memory definition, the counters (valgrind client requests, perf events),
latency statistics, the stability verdict, aggregation of a case's workers into its row,
streaming cases, interleaved A/B runs and tuning.

Side: device. May import `core`, `board`, `bundle.reader`, `backends` and the light parts
of `models`; never `analysis`, `fleet`, `cli` or the host side of `bundle` (import-linter
contracts in pyproject.toml).
"""

"""Reading runs back: compare two runs, the CI gate and its history, the Markdown report
with its plots.

Side: host (or anywhere the results files are). May import `core` and `measure.stats`;
never `cli` or `fleet` (import-linter contracts in pyproject.toml).
"""

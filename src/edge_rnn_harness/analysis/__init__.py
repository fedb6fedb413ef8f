"""Reading runs back: compare two runs, the CI gate and its history, the run store (DuckDB
over Parquet) and its trends, the Markdown and HTML reports with their figures.

Side: host (or anywhere the results files are). May import `core` and `measure`; never
`cli` or `fleet` (import-linter contracts in pyproject.toml).
"""

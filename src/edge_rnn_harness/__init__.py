"""edge-rnn-harness: one recurrent forecaster, every edge runtime, measured the same way.

Kept import-light on purpose: worker processes import this package before measuring the
resident set, so nothing heavy (pandas, rich, runtimes) is imported here.
"""

__version__ = "0.1.0"

"""`python -m edge_rnn_harness` is the `harness` command."""

from edge_rnn_harness.cli.main import main

raise SystemExit(main())

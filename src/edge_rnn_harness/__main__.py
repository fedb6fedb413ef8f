"""`python -m edge_rnn_harness` is the `harness` command (also a child program: a detached
run on a device, tune's runs)."""

from edge_rnn_harness.cli.main import main

raise SystemExit(main())

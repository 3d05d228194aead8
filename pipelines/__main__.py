"""``python -m pipelines`` is the ``sharedvol`` command."""

from pipelines import cli

raise SystemExit(cli.main())

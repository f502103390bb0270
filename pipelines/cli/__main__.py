"""`python -m pipelines.cli`: the `segpipe` command line."""

import sys

from pipelines.cli.main import main

sys.exit(main())

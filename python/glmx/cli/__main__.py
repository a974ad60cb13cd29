"""``python -m glmx.cli`` runs the ``glmx`` command line."""

import sys

from glmx.cli import main

sys.exit(main())

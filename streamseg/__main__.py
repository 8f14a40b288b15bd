"""``python -m streamseg`` runs the command line."""

import sys

from streamseg.cli import main

sys.exit(main())

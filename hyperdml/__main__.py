"""``python -m hyperdml ...`` (what ``torchrun -m hyperdml train ...`` runs)."""

import sys

from hyperdml.cli import main

sys.exit(main())

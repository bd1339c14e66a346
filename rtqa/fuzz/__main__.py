"""``python -m rtqa.fuzz``: see ``rtqa.fuzz`` and ``rtqa.fuzz.cli``."""

import sys

from .cli import main

sys.exit(main())

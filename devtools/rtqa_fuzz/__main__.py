"""``python -m rtqa_fuzz``: see ``rtqa_fuzz`` and ``rtqa_fuzz.cli``."""

import sys

from .cli import main

sys.exit(main())

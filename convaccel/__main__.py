"""``python -m convaccel``: the ``convaccel`` command."""

import sys

from .scripts.cli import main

sys.exit(main())

"""``python -m benchmarks.leaderboard``: see :mod:`benchmarks.leaderboard.build`."""

import sys

from .build import main

sys.exit(main())

"""``python -m tingshuo`` = the ``tingshuo`` console script."""

import sys

from tingshuo.cli import main

sys.exit(main())

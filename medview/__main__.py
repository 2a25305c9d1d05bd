"""`python -m medview` is the same as the `medview` console script."""

import sys

from medview.cli import main

sys.exit(main())

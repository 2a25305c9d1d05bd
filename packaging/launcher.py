"""Entry point of the frozen app: the same `medview` command line as the console script."""

import multiprocessing
import sys

if __name__ == "__main__":
    # a frozen executable re-runs itself for multiprocessing children (pyqtgraph, torch helpers): let it
    multiprocessing.freeze_support()
    from medview.cli import main

    sys.exit(main())

"""Entry point of the frozen app: the same `medview` command line as the console script."""

import multiprocessing
import sys
import warnings

if __name__ == "__main__":
    # torch's Python ships compiled only (see medview.spec): TorchScript could not script its overloaded
    # functions, which it says on import; the app loads compiled programs and never scripts. Set before
    # freeze_support, which runs a multiprocessing child's work (the decoders, listen's scoring) and exits
    warnings.filterwarnings("ignore", message="Unable to retrieve source for @torch.jit._overload")
    # a frozen executable re-runs itself for multiprocessing children (pyqtgraph, torch helpers): let it
    multiprocessing.freeze_support()
    from medview.cli import main

    sys.exit(main())

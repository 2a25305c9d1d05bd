"""medview's benchmark suite (`make bench` = `python -m benchmarks`): one JSON document on stdout.

Speed is measured here, against a peer measured in the same run on the same data, never as timed assertions
in tests. See benchmarks/README.md for how each figure is measured.
"""

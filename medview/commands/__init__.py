"""One module per command of SPEC section 1, each with `run(args) -> int`; imported lazily by cli.py."""

"""One module per ``harness`` sub-command; each defines ``add_parser(subparsers)``."""

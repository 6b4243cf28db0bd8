"""rnncore vs peers; the same harness as `rnncore bench` (see rnncore/bench.py)."""

import sys

from rnncore.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

"""``python -m streamseg.train``: the same as ``streamseg train``."""

from __future__ import annotations

import sys

from streamseg.train.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main(sys.argv[1:]))

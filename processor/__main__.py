"""Run the form processor: python -m processor [--root DIR] [--now ISO] COMMAND."""

from __future__ import annotations

import sys

from processor.cli import main

if __name__ == "__main__":
    sys.exit(main())

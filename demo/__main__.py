"""``python -m demo --url URL``: seed the demo market (see demo/cli.py)."""

import sys

from demo.cli import main

sys.exit(main())

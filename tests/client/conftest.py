"""The client is its own distribution (client/): tests import it from the source folder."""

from __future__ import annotations

import sys
from pathlib import Path

CLIENT_SRC = Path(__file__).resolve().parents[2] / "client"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))

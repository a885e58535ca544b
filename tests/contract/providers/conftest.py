from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:  # the repository is not installed into the venv; make `stages` importable
    sys.path.insert(0, _ROOT)

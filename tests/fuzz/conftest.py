"""The fuzz tables import each other by module name (as tests/calibration does)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

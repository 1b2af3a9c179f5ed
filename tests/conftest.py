import sys
from pathlib import Path

# Imported here, before any in-process pytester run: pytester restores sys.modules after each run, and a
# module first imported inside one would come back as a second copy whose exception classes httpx's cached
# httpcore-exception map no longer recognises (httpcore.ConnectError escaping as itself, not httpx's).
import httpcore  # noqa: F401
import httpx  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))  # tests share small helpers (saved_runs.py, procs.py)

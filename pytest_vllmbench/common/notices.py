"""Notices for the person at the terminal, on the real stderr: pytest captures sys.stderr while a test runs."""

from __future__ import annotations

import sys


def notice(text: str) -> None:
    print(f"\nvllmbench: {text}", file=sys.__stderr__, flush=True)

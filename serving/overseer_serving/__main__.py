"""`python -m overseer_serving` = `overseer serve`, for images and tests without the full CLI.

Both run `overseer_serving.command.main`: the same flags, checks and error boundary.
"""

from __future__ import annotations

import sys

from overseer_serving.command import main

if __name__ == "__main__":
    sys.exit(main())

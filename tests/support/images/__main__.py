"""``python -m tests.support.images [SUITE...]``: build or find the node images."""

from __future__ import annotations

import sys

from tests.support.images import main

sys.exit(main(sys.argv[1:]))

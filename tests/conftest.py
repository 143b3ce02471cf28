"""Makes ``ansible_collections.kubegpu.core`` importable from this checkout.

``.collections/ansible_collections/kubegpu/core`` is a link to the repository
root, the same path ansible.cfg gives Ansible, so tests import exactly the code
Ansible runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_PATH = REPO_ROOT / ".collections"

if str(COLLECTIONS_PATH) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_PATH))

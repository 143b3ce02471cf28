"""Makes ``ansible_collections.kubegpu.core`` importable from this checkout.

``.collections/ansible_collections/kubegpu/core`` is a link to the repository
root, the same path ansible.cfg gives Ansible, so tests import exactly the code
Ansible runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_PATH = REPO_ROOT / ".collections"

if str(COLLECTIONS_PATH) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_PATH))

# Property-based tests: a small example count in `make test`, a large one in `make fuzz`
# (KUBEGPU_HYPOTHESIS_PROFILE=fuzz; KUBEGPU_HYPOTHESIS_EXAMPLES overrides the count).
# No deadline: every example runs real binaries.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # a venv without the test requirements collects no property tests
    settings = None
if settings is not None:
    _EXAMPLES = {"test": 15, "fuzz": 300}
    for _profile, _count in _EXAMPLES.items():
        settings.register_profile(
            _profile,
            max_examples=int(os.environ.get("KUBEGPU_HYPOTHESIS_EXAMPLES", _count)),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            print_blob=True,
        )
    settings.load_profile(os.environ.get("KUBEGPU_HYPOTHESIS_PROFILE", "test"))

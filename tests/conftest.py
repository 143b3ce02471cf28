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


# The longest test files first: `make pytest` hands whole files to two xdist workers (--dist loadfile, with
# --no-loadscope-reorder: xdist's default order, most tests first, put the docker lab's two tests last, so its 12
# minutes ran alone after everything else had finished and set the length of the whole run). Collected first, they
# run beside the rest. Only the order changes.
LONG_FIRST = ("integration/test_lab.py", "integration/test_gpu_mig_role.py", "integration/test_gpu_validate.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((index for index, name in enumerate(LONG_FIRST) if path.endswith(name)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: the order within a file and among the other files is kept

from __future__ import annotations

import pytest
from ansible.module_utils.basic import AnsibleModule

from tests.support.module_args import patch_module_args


@pytest.fixture
def ansible_module():
    """A real AnsibleModule with no arguments, for helpers that take one."""
    with patch_module_args({}):
        yield AnsibleModule(argument_spec={}, supports_check_mode=True)

"""k8s_info's pure part: the release a ``gitVersion`` names (``server_version``)."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.core.plugins.modules.k8s_info import server_version


@pytest.mark.parametrize(
    ("git_version", "release"),
    [
        ("v1.25.4", "v1.25.4"),
        ("v1.31.1+k3s1", "v1.31.1"),
        ("v1.30.8-eks-2d5f260", "v1.30.8"),
        ("v1.32.0-rc.1", "v1.32.0"),
        ("v1.29.10-gke.1000", "v1.29.10"),
        ("1.25.4", None),
        ("v1.25", None),
        ("", None),
        (None, None),
        ({"gitVersion": "v1.25.4"}, None),
    ],
)
def test_server_version_is_the_semantic_version_at_the_start(git_version, release):
    assert server_version(git_version) == release

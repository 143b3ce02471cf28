"""The kernel_version_sort filter against the real ``linux-version sort`` of Debian's linux-base package (the
order linux-update-symlinks and the nvidia_driver role take the newest installed kernel by), for the releases
Debian, Ubuntu and the cloud kernels name (``uname -r``) and for generated ones."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kubegpu.core.plugins.filter.kernel_version_sort import FilterModule, kernel_version_sort

LINUX_VERSION = shutil.which("linux-version")
needs_linux_version = pytest.mark.skipif(
    LINUX_VERSION is None, reason="linux-version (Debian package linux-base, hack/apt-packages.txt) is not installed"
)


def linux_version_sort(releases: list[str]) -> list[str]:
    """The real tool: ``linux-version sort`` reads one release a line."""
    answer = subprocess.run(
        [LINUX_VERSION, "sort"], input="".join(f"{release}\n" for release in releases), capture_output=True, text=True, check=True
    )
    return answer.stdout.splitlines()


# Releases as the distributions name them: Debian stable and backports (the +bpo suffix), Ubuntu's generic and
# cloud flavours, an upstream release candidate (linux-version's pre-release rule).
KNOWN = [
    "6.1.0-28-amd64",
    "6.1.0-9-amd64",
    "6.1.0-30-cloud-amd64",
    "6.12.12+bpo-amd64",
    "6.12.9+bpo-amd64",
    "5.15.0-1071-aws",
    "5.15.0-126-generic",
    "6.8.0-49-generic",
    "6.8.0-51-generic",
    "6.8.0-1019-aws",
    "6.11.0-rc5-amd64",
    "6.11.0-amd64",
]


@pytest.mark.parametrize(
    ("releases", "newest"),
    [
        # Debian 12: the ABI number is compared as a number (28 > 9), not as text
        (["6.1.0-9-amd64", "6.1.0-28-amd64"], "6.1.0-28-amd64"),
        # a backports kernel is newer than the stable one
        (["6.1.0-28-amd64", "6.12.12+bpo-amd64"], "6.12.12+bpo-amd64"),
        (["6.12.9+bpo-amd64", "6.12.12+bpo-amd64"], "6.12.12+bpo-amd64"),
        # Ubuntu: an HWE kernel over the GA one
        (["5.15.0-126-generic", "6.8.0-49-generic"], "6.8.0-49-generic"),
        (["6.8.0-51-generic", "6.8.0-49-generic"], "6.8.0-51-generic"),
    ],
)
def test_the_newest_release_sorts_last(releases, newest):
    assert kernel_version_sort(releases)[-1] == newest
    assert kernel_version_sort(releases, reverse=True)[0] == newest


@needs_linux_version
def test_known_releases_sort_as_linux_version_sorts_them():
    assert kernel_version_sort(KNOWN) == linux_version_sort(KNOWN)


@needs_linux_version
def test_a_release_candidate_sorts_before_its_release_as_linux_version_says():
    assert linux_version_sort(["6.11.0-amd64", "6.11.0-rc5-amd64"])[0] == "6.11.0-rc5-amd64"
    assert kernel_version_sort(["6.11.0-amd64", "6.11.0-rc5-amd64"])[0] == "6.11.0-rc5-amd64"


# Generated releases: numbers of a kernel's sizes (Perl compares numbers as doubles: no 20-digit runs), the
# separators and words real releases have, and any printable ASCII between them.
_NUMBER = st.integers(min_value=0, max_value=99999).map(str) | st.sampled_from(["0", "00", "007"])
_WORD = st.sampled_from(["-", ".", "+", "~", "-rc", "-trunk", "-amd64", "-generic", "-aws", "+bpo", "-cloud", "rc", "a", "_"])
_TEXT = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=3)
_RELEASE = st.lists(_NUMBER | _WORD | _TEXT, min_size=1, max_size=8).map("".join)


@needs_linux_version
@settings(max_examples=150, deadline=None)
@given(st.lists(_RELEASE, min_size=2, max_size=6) | st.lists(st.sampled_from(KNOWN), min_size=2, max_size=6))
def test_generated_releases_sort_as_linux_version_sorts_them(releases):
    assert kernel_version_sort(releases) == linux_version_sort(releases)


@pytest.mark.parametrize("value", ["6.1.0-28-amd64", None, 6, [6], ["6.1.0 28"], [""]])
def test_what_is_not_a_list_of_releases_is_refused_naming_it(value):
    with pytest.raises(AnsibleFilterError, match=r"kernel_version_sort: ") as refused:
        kernel_version_sort(value)
    assert repr(value if not isinstance(value, list) else value[0]) in str(refused.value)


def test_the_filter_is_registered():
    assert FilterModule().filters()["kernel_version_sort"] is kernel_version_sort

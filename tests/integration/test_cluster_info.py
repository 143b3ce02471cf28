"""kubegpu.core.cluster_info through the real ``ansible`` command against the test API server (simulated: the
cluster, with its three GPU nodes and a settable ``/version``)."""

from __future__ import annotations

import pytest

from tests.support.kube_modules import run_kube_module, writes


@pytest.mark.matrix
def test_version_and_named_nodes_are_read_in_check_mode_too_and_nothing_is_written(kubeapi):
    kubeapi.admin.set_version("v1.25.4")
    for check in (True, False):
        run = run_kube_module(kubeapi, "cluster_info", {"nodes": ["gpu-node-2", "gpu-node-9"]}, check=check)
        assert not run.failed and not run.changed, run.result
        assert run.result["version"]["gitVersion"] == "v1.25.4" and run.result["server_version"] == "v1.25.4"
        assert sorted(run.result["nodes"]) == ["gpu-node-2"]
        node = run.result["nodes"]["gpu-node-2"]
        assert node["labels"]["nvidia.com/gpu.present"] == "true"
        assert node["allocatable"]["nvidia.com/gpu"] == "1" and node["taints"] == []
        assert run.result["missing_nodes"] == ["gpu-node-9"]
    assert writes(kubeapi) == []


def test_a_distribution_suffix_is_cut_and_no_node_means_no_list(kubeapi):
    kubeapi.admin.set_version("v1.31.1+k3s1")
    kubeapi.admin.reset_counters()
    run = run_kube_module(kubeapi, "cluster_info", {})
    assert run.result["version"]["gitVersion"] == "v1.31.1+k3s1" and run.result["server_version"] == "v1.31.1"
    assert run.result["nodes"] == {} and run.result["missing_nodes"] == []
    assert [entry["path"] for entry in kubeapi.admin.requests()] == ["/version"]


def test_a_bad_node_name_is_refused_before_any_request(kubeapi):
    kubeapi.admin.reset_counters()
    run = run_kube_module(kubeapi, "cluster_info", {"nodes": ["Bad_Node"]})
    assert run.failed and "invalid node name 'Bad_Node'" in run.result["msg"], run.result
    assert kubeapi.admin.requests() == []

"""gpu_readiness orders its entries by node name, whatever order the targets come in (the hosts of a play finish in
varying order): a re-run that changes nothing writes the same report.json and report.md (test_site_playbooks'
no-change re-run failed on the other order)."""

from __future__ import annotations

from ansible_collections.kubegpu.core.plugins.filter.gpu_readiness import gpu_readiness


def _target(name):
    return {"node": name, "host": name, "gpu": {}, "smoke": False}


def test_entries_come_by_node_name_whatever_the_order_of_the_targets():
    nodes = [{"metadata": {"name": name}} for name in ("gpu-node-1", "gpu-node-2", "gpu-node-3")]
    one = gpu_readiness([_target(n) for n in ("gpu-node-1", "gpu-node-3", "gpu-node-2")], nodes)
    other = gpu_readiness([_target(n) for n in ("gpu-node-2", "gpu-node-1", "gpu-node-3")], nodes)
    assert [entry["node"] for entry in one] == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    assert one == other

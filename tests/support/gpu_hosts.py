"""GPU hosts for role tests: an inventory whose hosts are this machine (``ansible_connection: local``), each
gathering real ``kubegpu.core.gpu_facts`` from a fake NVML scenario, and a playbook that gathers those facts and
then runs controller roles on localhost against the test API server.

What is simulated: the GPUs (the fake libnvidia-ml.so.1 answering from a JSON scenario, see
tests/support/fake_nvml/README.md) and the PCI bus (a fake sysfs tree, empty unless a host names PCI functions).
The facts themselves come from the real module, through the real pynvml binding.
"""

from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

from tests.support import fake_nvml
from tests.support.fake_sysfs import PciFunction, build


class GpuHost(t.NamedTuple):
    scenario: str  # a fake NVML scenario: v100x2, t4, h100x8, gtx1080ti, driver_not_loaded, ...
    node: str  # kubegpu_node_name
    vars: dict[str, t.Any] = {}  # further host vars (kubegpu_default_runtime, kubegpu_device_plugin, ...)
    pci: tuple[PciFunction, ...] = ()  # GPUs on the fake PCI bus (e.g. a GPU whose driver is not loaded)


def write_inventory(directory: Path, hosts: dict[str, GpuHost], group: str = "gpu_nodes") -> Path:
    """An inventory of ``hosts`` in ``group``, plus localhost; every host runs modules with this Python."""
    inventory_hosts = {}
    for name, host in hosts.items():
        sysfs = directory / f"sys-{name}"
        if not sysfs.exists():  # a test may write the same inventory again for its next run
            build(sysfs, list(host.pci), modules=())
        inventory_hosts[name] = {
            "kubegpu_node_name": host.node,
            "kubegpu_test_nvml_env": fake_nvml.environment(host.scenario),
            "kubegpu_test_sysfs": str(sysfs),
            **host.vars,
        }
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "hosts": {"localhost": {}},
            "children": {group: {"hosts": inventory_hosts}},
        }
    }
    path = directory / "inventory.json"
    path.write_text(json.dumps(inventory))
    return path


def write_playbook(directory: Path, kubeconfig: Path, roles: list[str], group: str = "gpu_nodes") -> Path:
    """Play 1 gathers gpu_facts on ``group`` (with each host's fake NVML); play 2 runs ``roles`` on localhost
    with the contract's module_defaults pointing the Kubernetes modules at ``kubeconfig``."""
    plays = [
        {
            "name": "GPU facts from the fake NVML scenarios",
            "hosts": group,
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Gather GPU facts",
                    "kubegpu.core.gpu_facts": {
                        "sysfs_root": "{{ kubegpu_test_sysfs }}",
                        "nvidia_smi_path": "/nonexistent/nvidia-smi",
                    },
                    "environment": "{{ kubegpu_test_nvml_env }}",
                }
            ],
        },
        {
            "name": "Cluster roles",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/kubegpu.core.k8s": {"kubeconfig": str(kubeconfig)}},
            "roles": [{"role": role} for role in roles],
        },
    ]
    path = directory / "playbook.yml"  # JSON is YAML
    path.write_text(json.dumps(plays))
    return path

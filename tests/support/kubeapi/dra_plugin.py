"""Kubelet-plugin double of the NVIDIA DRA driver (a test-bench simulation: no plugin runs, nothing speaks gRPC).

On a real node the DaemonSet of the chart ``dra-driver-nvidia-gpu`` (kubernetes-sigs/dra-driver-nvidia-gpu v0.4.1)
runs the container ``gpus`` (image ``dra-driver-nvidia-gpu``, program ``gpu-kubelet-plugin``). It enumerates the
GPUs through NVML, registers with the kubelet and publishes them in ResourceSlices through the resourceslice
controller of k8s.io/dynamic-resource-allocation (v0.36.0-rc.0 as vendored by the driver). This module decides, for
such a Pod that the kubelet double starts on a Node, what that plugin would publish there, from the node's fake NVML
scenario (``kubeapi.kubegpu.test/nvml-scenario`` and the MIG state ``kubeapi.kubegpu.test/nvml-state``, read as
device_plugins.py reads them); store.py writes and deletes the ResourceSlice.

Read from the driver's source at v0.4.1 (cmd/gpu-kubelet-plugin):

- **Devices** (nvlib.go ``GetPerGpuAllocatableDevices``, ``getGpuInfo``; deviceinfo.go ``GpuInfo.GetDevice``,
  ``Attributes``; partitions.go ``fullGpuCapacity``): one device per GPU with MIG off, named ``gpu-<minor>``
  (``CanonicalName``). Attributes: ``type`` ``gpu``, ``uuid``, ``productName`` (the NVML name), ``brand`` and
  ``architecture`` (go-nvlib's ``GetBrandAsString`` / ``GetArchitectureAsString`` names of NVML's enums: ``Tesla``,
  ``Nvidia``, ``Volta``, ``Hopper``, ``Ada Lovelace`` ...) as strings; ``cudaComputeCapability`` (``"<major>.<minor>"``),
  ``driverVersion`` (NVML's driver version) and ``cudaDriverVersion`` (``<v/1000>.<v%1000/10>`` of NVML's integer)
  as versions, each through Masterminds/semver's loose ``MustParse(...).String()`` (``7.0`` -> ``7.0.0``,
  ``535.161.08`` -> ``535.161.8``); ``resource.kubernetes.io/pciBusID`` (deviceattribute ``GetPCIBusIDAttribute``: the
  NVML bus id lower-cased with go-nvlib's leading ``0000`` of an 8-digit domain cut, ``0000:18:00.0``). Capacity
  ``memory``: the GPU's total memory in bytes as ``resource.NewQuantity(bytes, BinarySI)`` serializes it (``16Gi``,
  ``81559Mi``). Devices in the order of the GPUs' indices (the driver walks a Go map: its order varies).
- **The slice** (resourceslice controller ``syncPool``, kubeletplugin ``PublishResources``): one pool named after the
  node with one slice: ``generateName`` ``00000-gpu.nvidia.com-<node>-`` (5-digit hex slice index, driver, owner),
  a controller ownerReference to the Node (``v1``, ``Node``, its uid; no ``blockOwnerDeletion``), ``spec.driver``
  ``gpu.nvidia.com``, ``spec.nodeName``, ``spec.pool`` ``{name: <node>, generation: 1, resourceSliceCount: 1}``; a
  later change of the devices updates that slice, keeping the generation (one update call). The garbage collector
  removes it with its Node.
- **Removal**: when the plugin Pod stops (deleted or terminating), the kubelet's DRA plugin manager deletes the
  node's slices of the driver (``wipeResourceSlices``: deletecollection by ``spec.nodeName`` and ``spec.driver``).
  The kubelet waits its wiping delay (30 s) first, for a replacement pod; the bench deletes at once.
- **Failure**: a scenario with ``init_error`` fails the plugin at start (``error creating driver: ...
  ensureNVML failed: ERROR_<code>``): its container is reported restarting (``CrashLoopBackOff``, as
  device_plugins.py reports a plugin that exits) and nothing is published. A node without the scenario annotation
  gets nothing (its test manages it by hand).

Not simulated: MIG. With MIG on, the real driver publishes the GPU's MIG devices (``gpu-<minor>-mig-<profile>-...``
with GPU-instance profile capacities, ``mig.nvidia.com``) and not the GPU; the bench publishes no device for such a GPU.
Also not: the ``minor`` number (the scenarios have none: the index is taken, as ``/dev/nvidia<N>`` usually follows
it), ``resource.kubernetes.io/pcieRoot`` (read from sysfs, which the bench has not; the driver then leaves it out) and
``addressingMode`` (coherent-memory systems only), the DynamicMIG and passthrough (``vfio``) feature gates, device
health, the ComputeDomain plugin (``compute-domain-kubelet-plugin``), claim preparation and CDI specs.
"""

from __future__ import annotations

import posixpath
import re
from typing import Optional

from .device_plugins import Advertisement, _argv, _devices, _image_name

DRIVER = "gpu.nvidia.com"
PLUGIN_NAME = "gpu-kubelet-plugin"
IMAGE = "dra-driver-nvidia-gpu"
PCI_BUS_ID_ATTRIBUTE = "resource.kubernetes.io/pciBusID"
# go-nvlib pkg/nvlib/device GetArchitectureAsString / GetBrandAsString over go-nvml's enum values (nvml.h)
ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada Lovelace",
    9: "Hopper",
    10: "Blackwell",
    4294967295: "Unknown",
}
BRANDS = {
    0: "Unknown",
    1: "Quadro",
    2: "Tesla",
    3: "NVS",
    4: "Grid",
    5: "GeForce",
    6: "Titan",
    7: "NvidiaVApps",
    8: "NvidiaVPC",
    9: "NvidiaVCS",
    10: "NvidiaVWS",
    11: "NvidiaCloudGaming",
    12: "QuadroRTX",
    13: "NvidiaRTX",
    14: "Nvidia",
    15: "GeForceRTX",
    16: "TitanRTX",
}
BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def plugin_container(pod: dict) -> Optional[dict]:
    """The container of ``pod`` that runs the GPU kubelet plugin (the chart's ``gpus``), or None."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        if _image_name(container.get("image", "")) != IMAGE:
            continue
        words = [word for item in _argv(container) for word in item.split()]
        if any(posixpath.basename(word) == PLUGIN_NAME for word in words):
            return container
    return None


def is_kubelet_plugin(pod: dict) -> bool:
    return plugin_container(pod) is not None


def binary_si(value: int) -> str:
    """``resource.NewQuantity(value, BinarySI)`` as apimachinery serializes it: the largest power-of-1024 suffix that
    divides the value exactly (below 1024 a plain number)."""
    if -1024 < value < 1024:
        return str(value)
    exponent = 0
    while value % 1024 == 0 and exponent < len(BINARY_SUFFIXES) - 1:
        value //= 1024
        exponent += 1
    return f"{value}{BINARY_SUFFIXES[exponent]}"


def semver(text: str) -> str:
    """Masterminds/semver v3 ``MustParse(text).String()`` with its default ``CoerceNewVersion`` (leading zeros and
    missing parts accepted): ``major.minor.patch`` plus any pre-release and build metadata."""
    match = re.fullmatch(r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?", str(text))
    if match is None:
        raise ValueError(f"invalid semantic version: {text!r}")
    parts = [int((match.group(index) or ".0").lstrip(".")) for index in (1, 2, 3)]
    return ".".join(str(part) for part in parts) + (match.group(4) or "") + (match.group(5) or "")


def pci_bus_id(nvml_bus_id: str) -> str:
    """go-nvlib ``GetPCIBusID``: NVML's bus id lower-cased, the leading ``0000`` of an 8-digit domain cut."""
    text = nvml_bus_id.lower()
    return text[4:] if re.match(r"^0{4}[0-9a-f]{4}:", text) else text


def gpu_device(index: int, gpu: dict, scenario: dict) -> dict:
    """The ResourceSlice device of one full GPU (``GpuInfo.GetDevice``)."""
    major, minor = (gpu.get("compute_capability") or [0, 0])[:2]
    cuda = int(scenario.get("cuda_driver_version") or 0)
    attributes = {
        "type": {"string": "gpu"},
        "uuid": {"string": gpu.get("uuid", "")},
        "productName": {"string": gpu.get("name", "")},
        "brand": {"string": BRANDS.get(int(gpu.get("brand", 0)), "Unknown")},
        "architecture": {"string": ARCHITECTURES.get(int(gpu.get("architecture", 4294967295)), "Unknown")},
        "cudaComputeCapability": {"version": semver(f"{major}.{minor}")},
        "driverVersion": {"version": semver(str(scenario.get("driver_version", "")))},
        "cudaDriverVersion": {"version": semver(f"{cuda // 1000}.{(cuda % 1000) // 10}")},
    }
    bus_id = pci_bus_id(str(gpu.get("pci_bus_id") or ""))
    if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]", bus_id):
        attributes[PCI_BUS_ID_ATTRIBUTE] = {"string": bus_id}
    device: dict = {"name": f"gpu-{index}", "attributes": attributes}
    if gpu.get("memory_total_mib") is not None:
        device["capacity"] = {"memory": {"value": binary_si(int(gpu["memory_total_mib"]) * 1024 * 1024)}}
    return device


def publication(pod: dict, node: Optional[dict]) -> tuple[Optional[Advertisement], list[dict]]:
    """(the plugin container's outcome for device_plugins.plugin_status, the devices it publishes) of ``pod`` on
    ``node``; (None, []) for a Pod that is no GPU kubelet plugin or a node without the scenario annotation."""
    container = plugin_container(pod)
    scenario = _devices(node) if container is not None and node is not None else None
    if container is None or scenario is None:
        return None, []
    outcome = Advertisement(PLUGIN_NAME, container.get("name", ""))
    if scenario.get("init_error"):
        outcome.error = (
            "error creating driver: error enumerating all possible devices: error enumerating allocatable devices: "
            f"ensureNVML failed: ERROR_{scenario['init_error']}"
        )
        return outcome, []
    devices = [
        gpu_device(index, gpu, scenario)
        for index, gpu in enumerate(scenario.get("devices") or [])
        if (gpu.get("mig") or {}).get("current") != 1
    ]
    return outcome, devices


def resource_slice(node: dict, devices: list[dict]) -> dict:
    """The ResourceSlice the resourceslice controller creates for the node's pool."""
    name = node["metadata"]["name"]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {
            "generateName": f"00000-{DRIVER}-{name}-",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"].get("uid", ""), "controller": True}
            ],
        },
        "spec": {
            "driver": DRIVER,
            "nodeName": name,
            "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
            "devices": devices,
        },
    }

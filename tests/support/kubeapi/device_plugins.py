"""Device plugin doubles for the kubelet double (a test-bench simulation: no plugin runs, nothing speaks gRPC).

On a real node a device plugin pod enumerates the GPUs through NVML, registers one resource per plugin with the
kubelet's device manager (``/var/lib/kubelet/device-plugins/kubelet.sock``) and lists its devices; the kubelet then
writes ``status.capacity`` and ``status.allocatable`` of its Node from what was registered. None of that can happen
on the bench, so this module decides, for a Pod of one of the real plugins that the kubelet double starts on a Node,
what that plugin would advertise there, read from the same inputs the plugin reads (its container command, flags,
environment and the ConfigMaps mounted into the Pod), as the plugins' own source decides it:

- **NVIDIA k8s-device-plugin** (NVIDIA/k8s-device-plugin v0.20.0, chart ``nvidia-device-plugin``): a container of
  the ``k8s-device-plugin`` image running ``nvidia-device-plugin`` (the image's entrypoint, deployments/container/
  Dockerfile). Its config file is ``--config-file`` / ``CONFIG_FILE`` (cmd/nvidia-device-plugin/main.go); with the
  chart's config-manager (a container running ``config-manager`` whose ``CONFIG_FILE_DST`` is that file) the file
  is the key of the ConfigMap mounted at ``CONFIG_FILE_SRCDIR`` chosen as cmd/config-manager/main.go chooses it:
  the node label ``NODE_LABEL`` (default ``nvidia.com/device-plugin.config``; a value naming no key fails),
  else ``DEFAULT_CONFIG``, else ``FALLBACK_STRATEGIES`` in order (``named``: the key ``default``; ``single``: the
  only key; ``empty``: no config); nothing found fails the container. The config (api/config/v1/config.go,
  replicas.go, sharing.go): ``version`` empty or ``v1``; ``sharing.mps`` when present, else
  ``sharing.timeSlicing``; every entry needs ``replicas`` >= 2; ``renameByDefault: true`` renames the replicated
  resource to ``<name>.shared``; the per-entry ``rename`` and ``devices`` are ignored
  (``DisableResourceNamingInConfig``). Advertised: ``nvidia.com/gpu`` (or its ``.shared`` rename) = GPUs x
  ``replicas`` (internal/rm/device_map.go ``updateDeviceMapWithReplicas``), else GPUs. MPS sharing starts only
  when the node runs the chart's MPS control daemon (a Running, Ready pod running ``mps-control-daemon`` there;
  internal/plugin/mps.go ``waitForDaemon``), else the container fails. ``MIG_STRATEGY``/``--mig-strategy`` (over
  ``flags.migStrategy``; internal/rm/rm.go, internal/rm/device_map.go ``buildDeviceMapFromConfigResources``):
  ``none`` counts every GPU, MIG on or off; ``mixed`` advertises the GPUs with MIG off as ``nvidia.com/gpu`` and
  each MIG device as ``nvidia.com/mig-<profile>`` (``+`` in the profile becomes ``.``; a profile whose compute
  instance is smaller than its GPU instance, ``1c.3g.20gb``, matches no resource and the plugin exits; not with MPS);
  ``single`` advertises every MIG device as ``nvidia.com/gpu`` and exits unless every GPU has MIG on with at least
  one MIG device, all of one profile. A MIG device's profile is read from its NVML name (``<GPU> MIG <profile>``) or
  the scenario's ``profile`` key. Time-slicing/MPS replicas multiply the resource their entry names.
- **HAMi's device plugin** (Project-HAMi/HAMi v2.10.0, chart ``hami``): a container of the ``hami`` image running
  ``nvidia-device-plugin``. Its settings come from ``--config-file`` (the chart mounts ConfigMap
  ``<release>-scheduler-device``'s ``device-config.yaml``; key ``nvidia``: ``resourceCountName``,
  ``deviceSplitCount``, ``deviceMemoryScaling``, ``deviceCoreScaling``), overridden for this node by the
  ``nodeconfig`` entry of ``/config/config.json`` whose ``name`` is the node's (cmd/device-plugin/nvidia/
  vgpucfg.go, pkg/device-plugin/nvidiadevice/nvinternal/plugin/server.go ``readFromConfigFile``); the
  ``--device-split-count`` style flags are not read. Advertised to the kubelet: ``resourceCountName`` = GPUs x
  ``deviceSplitCount`` (nvinternal/rm/devices.go ``GetPluginDevices``) and nothing else: ``nvidia.com/gpumem``
  and ``nvidia.com/gpucores`` are never node resources, HAMi's scheduler reads them from the node annotation
  ``hami.io/node-nvidia-register`` that the plugin writes (nvinternal/plugin/register.go ``getAPIDevices``,
  pkg/device/devices.go ``MarshalNodeDevices``: JSON of ``DeviceInfo`` with Go's ``omitempty``): per GPU its
  UUID, index, ``count`` = split count, ``devmem`` = MiB x ``deviceMemoryScaling`` (truncated), ``devcore`` =
  ``deviceCoreScaling`` x 100, ``type`` = the NVML name with ``NVIDIA-`` put in front when it does not start with
  ``NVIDIA``, ``numa`` (0 here: the bench has no sysfs), ``mode`` (``hami-core`` unless the node's entry says),
  ``health``.
- **AWS virtual GPU device plugin** (awslabs/aws-virtual-gpu-device-plugin 51832a5): a container of the
  ``aws-virtual-gpu-device-plugin`` image or running ``vgpu-device-plugin``. Advertised: ``k8s.amazonaws.com/vgpu``
  = GPUs x ``--vgpu`` (default 10; above 48 the plugin exits: main.go, pkg/gpu/nvidia/nvidia.go
  ``getVGPUDevices``).

**The physical GPUs of a bench Node** are the fake NVML scenario named by its annotation
``kubeapi.kubegpu.test/nvml-scenario`` (tests/support/fake_nvml/<name>.json, or a scenario file by its absolute
path: UUIDs, names, memory, MIG mode and devices, ``init_error``), the same scenario the lab's node container and
gpu_facts read; ``kubeapi.kubegpu.test/nvml-state`` names the MIG state file the fake library keeps for that node's
GPU host (``FAKE_NVML_STATE``), laid over the scenario. ``nodes.gpu_node(scenario=...)``, ``fixtures/gpu-nodes.yaml``
and the lab set the scenario. A Node without it is managed by hand by its test: no plugin double ever changes it.

A plugin that would exit (bad config, NVML not loaded with ``failOnInitError``, no MPS daemon) registers nothing
and its container is reported restarting (``CrashLoopBackOff``, the pod not Ready) with the plugin's reason.
The kubelet side (kubernetes pkg/kubelet/cm/devicemanager/manager.go): a registered resource has capacity and
allocatable = its device count; when its plugin pod goes away the devices become unhealthy (``markResourceUnhealthy``):
capacity stays, allocatable is 0 (the resource's removal 5 minutes later, ``endpointStopGracePeriod``, is not
simulated); the ``nvidia.com/gpu`` a fixture Node starts with counts as registered by an earlier plugin, so once a
plugin Pod ran on the node and no running one registers it, its allocatable is 0. A plugin's settings are read when
its pod starts (and when a restarting plugin is retried, after a plugin Pod or the MPS daemon on its node changed); a
ConfigMap or label changed later takes effect when the pod is recreated (the charts' ``checksum/config`` annotations
roll the pods on a config change).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import yaml

from tests.support import fake_nvml

SCENARIO_ANNOTATION = "kubeapi.kubegpu.test/nvml-scenario"
MIG_STATE_ANNOTATION = "kubeapi.kubegpu.test/nvml-state"
HAMI_REGISTER_ANNOTATION = "hami.io/node-nvidia-register"
# Resources one of the simulated plugins registers by default: on a node a plugin pod ran on, such a resource that
# no running plugin registers any more is one whose plugin went away (allocatable 0).
PLUGIN_RESOURCES = ("nvidia.com/gpu", "nvidia.com/gpu.shared", "k8s.amazonaws.com/vgpu")
PLUGIN_NAMES = {"nvidia": "nvidia-device-plugin", "hami": "hami-device-plugin", "aws": "aws-virtual-gpu-device-plugin"}
AWS_MAX_VGPU = 48  # VOLTA_MAXIMUM_MPS_CLIENT in the AWS plugin's main.go

ConfigMapLookup = Callable[[str, str], Optional[dict]]


@dataclass
class Advertisement:
    """What one plugin container registers on its node (or why it exits instead)."""

    plugin: str
    container: str
    resources: dict[str, int] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    error: str = ""


def _image_name(image: str) -> str:
    name = (image or "").split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _argv(container: dict) -> list[str]:
    return [str(item) for item in (container.get("command") or []) + (container.get("args") or [])]


def _program(container: dict, entrypoint: str) -> str:
    argv = _argv(container) if container.get("command") else [entrypoint]
    return posixpath.basename(argv[0]) if argv else ""


def _flag(argv: list[str], name: str) -> Optional[str]:
    """The value of ``--name=V``, ``-name=V`` or ``--name V`` (Go's flag package and urfave/cli accept them)."""
    for index, item in enumerate(argv):
        match = re.fullmatch(rf"--?{re.escape(name)}(?:=(.*))?", item)
        if match:
            if match.group(1) is not None:
                return match.group(1)
            return argv[index + 1] if index + 1 < len(argv) else ""
    return None


def _env(container: dict, name: str) -> Optional[str]:
    for item in container.get("env") or []:
        if item.get("name") == name and "valueFrom" not in item:
            return "" if item.get("value") is None else str(item.get("value"))
    return None


def _setting(container: dict, flag: str, env: str) -> Optional[str]:
    """A urfave/cli setting: the flag, else its environment variable."""
    value = _flag(_argv(container), flag)
    return value if value is not None else _env(container, env)


def _volume_config_map(pod: dict, volume_name: str, lookup: ConfigMapLookup) -> tuple[Optional[dict], Optional[dict]]:
    """(the configMap volume source, the ConfigMap) of the Pod's volume ``volume_name``."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if volume.get("name") == volume_name and volume.get("configMap"):
            source = volume["configMap"]
            namespace = (pod.get("metadata") or {}).get("namespace") or "default"
            return source, lookup(namespace, source.get("name", ""))
    return None, None


def _config_map_files(source: dict, config_map: dict) -> dict[str, str]:
    """File name -> content of a configMap volume (``items`` pick and rename keys)."""
    data = {str(k): str(v) for k, v in (config_map.get("data") or {}).items()}
    if source.get("items"):
        return {item["path"]: data[item["key"]] for item in source["items"] if item.get("key") in data}
    return data


def _mounted_file(pod: dict, container: dict, path: str, lookup: ConfigMapLookup) -> Optional[str]:
    """The content of ``path`` in ``container`` when a ConfigMap volume provides it, else None."""
    for mount in container.get("volumeMounts") or []:
        mount_path = (mount.get("mountPath") or "").rstrip("/")
        sub_path = mount.get("subPath") or ""
        source, config_map = _volume_config_map(pod, mount.get("name", ""), lookup)
        if source is None or config_map is None:
            continue
        files = _config_map_files(source, config_map)
        if sub_path and mount_path == path:
            return files.get(sub_path)
        if not sub_path and posixpath.dirname(path) == mount_path:
            return files.get(posixpath.basename(path))
    return None


def _devices(node: dict) -> Optional[dict]:
    """The node's GPUs: the scenario its annotation names (or the scenario file at an absolute path), with the MIG
    state file that ``MIG_STATE_ANNOTATION`` names laid over it (the fake NVML library's ``FAKE_NVML_STATE`` of the
    node's GPU host: what the MIG calls of its modules left), so the plugin sees the GPUs as that host left them."""
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    name = annotations.get(SCENARIO_ANNOTATION)
    if not name:
        return None
    if posixpath.isabs(name):
        with open(name, encoding="utf-8") as handle:
            scenario = json.load(handle)
    else:
        scenario = fake_nvml.load(name)
    state = annotations.get(MIG_STATE_ANNOTATION)
    if state and posixpath.isfile(state):
        with open(state, encoding="utf-8") as handle:
            _lay_mig_state(scenario, json.load(handle))
    return scenario


def _lay_mig_state(scenario: dict, state: dict) -> None:
    """The fake NVML library's MIG state file (``{"gpus": [{"uuid", "current", "pending", "gpu_instances": [{"name",
    "compute_instances": [{"uuid", "size"}]}]}]}``, tests/support/fake_nvml/README.md) over the scenario's ``mig`` keys:
    one MIG device per compute instance, named as NVML names it (``<GPU> MIG <profile>``, ``<n>c.<profile>`` for a
    compute instance smaller than its GPU instance)."""
    by_uuid = {gpu.get("uuid"): gpu for gpu in state.get("gpus") or []}
    for device in scenario.get("devices") or []:
        gpu = by_uuid.get(device.get("uuid"))
        if gpu is None:
            continue
        migs = []
        for instance in gpu.get("gpu_instances") or []:
            profile = str(instance.get("name") or "")
            slices = int(profile.split("g.", 1)[0]) if re.match(r"\d+g\.", profile) else 0
            for compute in instance.get("compute_instances") or []:
                size = int(compute.get("size") or slices)
                migs.append(
                    {
                        "name": f"{device.get('name')} MIG {profile if size == slices else f'{size}c.{profile}'}",
                        "uuid": compute.get("uuid"),
                        "gpu_instance_id": instance.get("id"),
                        "compute_instance_id": compute.get("id"),
                    }
                )
        device["mig"] = {
            **(device.get("mig") or {}),
            "current": gpu.get("current"),
            "pending": gpu.get("pending"),
            "devices": migs,
        }


def _containers(pod: dict) -> list[dict]:
    spec = pod.get("spec") or {}
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


# --- NVIDIA k8s-device-plugin -------------------------------------------------------------------


def _config_manager_choice(pod: dict, node: dict, destination: str, lookup: ConfigMapLookup) -> tuple[bool, str]:
    """(a config-manager writes ``destination``, the config text it links there: "" for the empty config)."""
    for container in _containers(pod):
        if _program(container, "") != "config-manager":
            continue
        if (_setting(container, "config-file-dst", "CONFIG_FILE_DST") or "") != destination:
            continue
        srcdir = (_setting(container, "config-file-srcdir", "CONFIG_FILE_SRCDIR") or "").rstrip("/")
        files: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            if (mount.get("mountPath") or "").rstrip("/") == srcdir:
                source, config_map = _volume_config_map(pod, mount.get("name", ""), lookup)
                if source is not None and config_map is not None:
                    files = _config_map_files(source, config_map)
        if not files:
            raise _Exit("config-manager: error getting list of configuration files: no configuration files available")
        label = _setting(container, "node-label", "NODE_LABEL") or "nvidia.com/device-plugin.config"
        chosen = ((node.get("metadata") or {}).get("labels") or {}).get(label, "")
        if chosen:
            if chosen not in files:
                raise _Exit(f"config-manager: specified config {chosen} does not exist")
            return True, files[chosen]
        default = _setting(container, "default-config", "DEFAULT_CONFIG") or ""
        if default:
            if default not in files:
                raise _Exit(f"config-manager: specified config {default} does not exist")
            return True, files[default]
        strategies = _setting(container, "fallback-strategies", "FALLBACK_STRATEGIES") or ""
        for strategy in [item for item in strategies.split(",") if item]:
            if strategy == "named" and "default" in files:
                return True, files["default"]
            if strategy == "single" and len(files) == 1:
                return True, next(iter(files.values()))
            if strategy == "empty":
                return True, ""
            if strategy not in ("named", "single", "empty"):
                raise _Exit(f"config-manager: unknown fallback strategy: {strategy}")
        raise _Exit("config-manager: no config was set, no default was provided, and all fallbacks failed")
    return False, ""


class _Exit(Exception):
    """The plugin (or its config-manager) exits with this message."""


def _replicated(sharing: dict, key: str) -> Optional[dict]:
    block = sharing.get(key)
    if block is None:
        return None
    resources = block.get("resources") if isinstance(block, dict) else None
    if not resources:
        raise _Exit(f"unable to load config: unable to parse config file: sharing.{key}: no resources specified")
    for entry in resources:
        replicas = entry.get("replicas")
        if "name" not in entry:
            raise _Exit("unable to load config: unable to parse config file: no resource name specified")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise _Exit(f"unable to load config: unable to parse config file: replicas {replicas!r} is not a number")
        if replicas < 2:
            raise _Exit("unable to load config: unable to parse config file: number of replicas must be >= 2")
    return block


def _mps_daemon_running(node_name: str, pods: list[dict]) -> bool:
    for other in pods:
        if (other.get("spec") or {}).get("nodeName") != node_name or (other.get("status") or {}).get("phase") != "Running":
            continue
        for container in (other.get("spec") or {}).get("containers") or []:
            if _image_name(container.get("image", "")) == "k8s-device-plugin" and _program(container, "") == "mps-control-daemon":
                return _container_ready(other, container.get("name", ""))
    return False


def _nvidia(pod: dict, container: dict, node: dict, gpus: dict, lookup: ConfigMapLookup, *, pods: list[dict]) -> Advertisement:
    ad = Advertisement(PLUGIN_NAMES["nvidia"], container.get("name", ""))
    path = _setting(container, "config-file", "CONFIG_FILE") or ""
    text = ""
    if path:
        managed, text = _config_manager_choice(pod, node, path, lookup)
        if not managed:
            found = _mounted_file(pod, container, path, lookup)
            if found is None:
                raise _Exit(
                    f"unable to load config: unable to parse config file: error opening config file: open {path}: "
                    "no such file or directory"
                )
            text = found
    try:
        config = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise _Exit(f"unable to load config: unable to parse config file: unmarshal error: {error}") from error
    config = config if isinstance(config, dict) else {}
    if config.get("version") not in (None, "", "v1"):
        raise _Exit(f"unable to load config: unable to parse config file: unknown version: {config.get('version')}")
    flags = config.get("flags") or {}
    mig_strategy = _setting(container, "mig-strategy", "MIG_STRATEGY") or flags.get("migStrategy") or "none"
    fail_on_init = _setting(container, "fail-on-init-error", "FAIL_ON_INIT_ERROR")
    fail = str(flags.get("failOnInitError", True)).lower() != "false" if fail_on_init is None else fail_on_init.lower() != "false"
    sharing = config.get("sharing") or {}
    mps = _replicated(sharing, "mps")
    time_slicing = _replicated(sharing, "timeSlicing")
    if gpus.get("init_error"):
        if fail:
            raise _Exit(f"failed to initialize NVML: ERROR_{gpus['init_error']}")
        return ad  # waits for NVML without registering anything
    if mig_strategy not in ("none", "single", "mixed"):
        raise _Exit(f"unable to validate flags: unknown MIG strategy: {mig_strategy}")
    if mps is not None and mig_strategy == "mixed":
        raise _Exit("unable to validate flags: using --mig-strategy=mixed is not supported with MPS")
    devices = gpus.get("devices") or []
    if not devices:
        return ad  # "No devices found. Waiting indefinitely."
    replicated = mps if mps is not None else time_slicing
    if mps is not None and not _mps_daemon_running(node["metadata"]["name"], pods):
        raise _Exit(
            "Failed to start plugin: error waiting for MPS daemon: error checking MPS daemon health: "
            "no MPS control daemon runs on the node"
        )
    advertised = _nvidia_device_map(devices, mig_strategy)
    for entry in (replicated or {}).get("resources") or []:
        if entry.get("name") not in advertised:
            continue  # a resource this node's devices do not provide is skipped
        count = advertised.pop(entry["name"])
        name = f"{entry['name']}.shared" if replicated.get("renameByDefault") is True else entry["name"]
        advertised[name] = count * entry["replicas"]
    ad.resources = advertised
    return ad


def _mig_profile(mig_device: dict) -> str:
    name = str(mig_device.get("name") or "")
    return str(mig_device.get("profile") or (name.rsplit(" MIG ", 1)[1].strip() if " MIG " in name else ""))


def _nvidia_device_map(devices: list[dict], strategy: str) -> dict[str, int]:
    """Resource name -> device count, as internal/rm/device_map.go builds it for ``strategy``."""
    if strategy == "none":
        return {"nvidia.com/gpu": len(devices)}
    enabled = [(index, d) for index, d in enumerate(devices) if (d.get("mig") or {}).get("current") == 1]
    whole = len(devices) - len(enabled)
    migs = [mig for entry in enabled for mig in (entry[1].get("mig") or {}).get("devices") or []]
    advertised: dict[str, int] = {"nvidia.com/gpu": whole} if whole else {}
    prefix = "error building device map: error building device map from config.resources: "
    if strategy == "single":
        for index, d in enabled:
            if not (d.get("mig") or {}).get("devices"):
                raise _Exit(
                    f"{prefix}invalid MIG configuration: at least one device with migEnabled=true was not configured "
                    f"correctly: device {index} has no MIG devices configured"
                )
        if len({_mig_profile(mig) for mig in migs}) > 1:
            raise _Exit(f"{prefix}invalid MIG configuration: more than one MIG device type present on node")
        if whole and migs:
            raise _Exit(f"{prefix}all devices on the node must be configured with the same migEnabled value")
        return {"nvidia.com/gpu": len(migs)} if migs else advertised
    for mig in migs:
        profile = _mig_profile(mig)
        if not re.fullmatch(r"\d+g\.\d+gb(\+\w+)?", profile):  # C != G (1c.3g.20gb): no resource pattern for it
            raise _Exit(f"{prefix}error building MIG device map: MIG profile '{profile}' does not match any resource patterns")
        resource = "nvidia.com/" + f"mig-{profile}".replace("+", ".")
        advertised[resource] = advertised.get(resource, 0) + 1
    return advertised


# --- HAMi ---------------------------------------------------------------------------------------


def _hami(pod: dict, container: dict, node: dict, gpus: dict, lookup: ConfigMapLookup) -> Advertisement:
    ad = Advertisement(PLUGIN_NAMES["hami"], container.get("name", ""))
    path = _flag(_argv(container), "config-file") or ""
    text = _mounted_file(pod, container, path, lookup) if path else None
    if text is None:
        raise _Exit(f"failed to load device config file {path}: open {path}: no such file or directory")
    try:
        settings = dict(((yaml.safe_load(text) or {}).get("nvidia")) or {})
    except (yaml.YAMLError, AttributeError) as error:
        raise _Exit(f"failed to load device config file {path}: {error}") from error
    node_config = _mounted_file(pod, container, "/config/config.json", lookup)
    mode = "hami-core"
    if node_config:
        for entry in (json.loads(node_config) or {}).get("nodeconfig") or []:
            if entry.get("name") != node["metadata"]["name"]:
                continue
            for json_key, yaml_key in (
                ("devicesplitcount", "deviceSplitCount"),
                ("devicememoryscaling", "deviceMemoryScaling"),
                ("devicecorescaling", "deviceCoreScaling"),
            ):
                if entry.get(json_key):  # mergo.Merge(WithOverride) leaves zero values alone
                    settings[yaml_key] = entry[json_key]
            mode = entry.get("operatingmode") or mode
    for key in ("resourceCountName", "deviceSplitCount", "deviceMemoryScaling", "deviceCoreScaling"):
        if settings.get(key) in (None, ""):
            raise _Exit(f"{path}: nvidia.{key} is not set")
    if gpus.get("init_error"):
        raise _Exit(f"nvml Init err: ERROR_{gpus['init_error']}")
    devices = gpus.get("devices") or []
    split = int(settings["deviceSplitCount"])
    register = []
    for index, device in enumerate(devices):
        name = device.get("name", "")
        info: dict[str, Any] = {"id": device.get("uuid", "")}
        if index:
            info["index"] = index
        info["count"] = split
        info["devmem"] = int(int(device.get("memory_total_mib", 0)) * float(settings["deviceMemoryScaling"]))
        info["devcore"] = int(float(settings["deviceCoreScaling"]) * 100)
        info["type"] = name if name.startswith("NVIDIA") else f"NVIDIA-{name}"
        info["mode"] = mode
        info["health"] = True
        register.append(info)
    if devices:
        ad.resources = {str(settings["resourceCountName"]): len(devices) * split}
        ad.annotations = {HAMI_REGISTER_ANNOTATION: json.dumps(register, separators=(",", ":"))}
    return ad


# --- AWS virtual GPU device plugin --------------------------------------------------------------


def _aws(container: dict, gpus: dict) -> Advertisement:
    ad = Advertisement(PLUGIN_NAMES["aws"], container.get("name", ""))
    raw = _flag(_argv(container), "vgpu")
    try:
        vgpu = 10 if raw is None else int(raw)
    except ValueError as error:
        raise _Exit(f'invalid value "{raw}" for flag -vgpu: parse error') from error
    if vgpu > AWS_MAX_VGPU:
        raise _Exit("Number of virtual GPUs can not exceed maximum number of MPS clients")
    if gpus.get("init_error"):
        raise _Exit(f"Fatal: ERROR_{gpus['init_error']}")
    ad.resources = {"k8s.amazonaws.com/vgpu": len(gpus.get("devices") or []) * vgpu}
    return ad


# --- the kubelet's side -------------------------------------------------------------------------


def _plugin_container(container: dict) -> str:
    image = _image_name(container.get("image", ""))
    if image == "k8s-device-plugin" and _program(container, "nvidia-device-plugin") == "nvidia-device-plugin":
        return "nvidia"
    if image == "hami" and _program(container, "") == "nvidia-device-plugin":
        return "hami"
    if image == "aws-virtual-gpu-device-plugin" or any(posixpath.basename(a) == "vgpu-device-plugin" for a in _argv(container)):
        return "aws"
    return ""


def is_plugin(pod: dict) -> bool:
    """A Pod with a container of one of the simulated plugins."""
    return any(_plugin_container(c) for c in (pod.get("spec") or {}).get("containers") or [])


def involved(pod: dict) -> bool:
    """A Pod whose start or end can change what the plugins on its node register: a plugin, or the NVIDIA
    chart's MPS control daemon (the plugin with MPS sharing waits for it)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return is_plugin(pod) or any(_program(c, "") == "mps-control-daemon" for c in containers)


def advertisements(pod: dict, node: Optional[dict], lookup: ConfigMapLookup, pods: list[dict]) -> list[Advertisement]:
    """What each plugin container of ``pod`` registers on ``node`` ([] for a Pod of no simulated plugin, or a node
    without the scenario annotation)."""
    containers = [(c, _plugin_container(c)) for c in (pod.get("spec") or {}).get("containers") or []]
    containers = [(c, kind) for c, kind in containers if kind]
    gpus = _devices(node) if node is not None and containers else None
    if gpus is None:
        return []
    found = []
    for container, kind in containers:
        try:
            if kind == "nvidia":
                found.append(_nvidia(pod, container, node, gpus, lookup, pods=pods))
            elif kind == "hami":
                found.append(_hami(pod, container, node, gpus, lookup))
            else:
                found.append(_aws(container, gpus))
        except _Exit as exit_:
            found.append(Advertisement(PLUGIN_NAMES[kind], container.get("name", ""), error=str(exit_)))
    return found


def _container_ready(pod: dict, name: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return bool(status.get("ready"))
    return False


def plugin_status(status: dict, ads: list[Advertisement], stamp: str) -> dict:
    """The kubelet's status of a Running plugin Pod: a plugin container that exits restarts again and again
    (``CrashLoopBackOff``, not ready, the Pod not Ready); one that starts (again: the kubelet keeps restarting it,
    e.g. once the MPS daemon runs) is running and ready."""
    if status.get("phase") != "Running" or not ads:
        return status
    status = json.loads(json.dumps(status))
    outcome = {ad.container: ad.error for ad in ads}
    for item in status.get("containerStatuses") or []:
        if item.get("name") not in outcome:
            continue
        error = outcome[item["name"]]
        if error:
            item.update(ready=False, started=False, restartCount=max(int(item.get("restartCount") or 0), 1))
            item["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": error}}
        elif not item.get("ready"):
            item.update(ready=True, started=True, state={"running": {"startedAt": stamp}})
    unready = sorted(item["name"] for item in status.get("containerStatuses") or [] if not item.get("ready"))
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Ready", "ContainersReady"):
            condition.pop("reason", None)
            condition.pop("message", None)
            condition["status"] = "False" if unready else "True"
            if unready:
                condition.update(reason="ContainersNotReady", message=f"containers with unready status: [{' '.join(unready)}]")
    return status


def registered(
    node: dict, pods: list[dict], lookup: ConfigMapLookup, departed: bool = False
) -> Optional[tuple[dict, dict, dict]]:
    """(capacity, allocatable, annotations) of ``node`` once its kubelet's device manager took in what the plugin
    Pods running there registered (``departed``: a plugin Pod of the node was just removed); None when no plugin
    Pod is or was there, or the node has no scenario."""
    if _devices(node) is None:
        return None
    name = node["metadata"]["name"]
    status = node.get("status") or {}
    capacity = dict(status.get("capacity") or {})
    allocatable = dict(status.get("allocatable") or {})
    annotations: dict[str, str] = {}
    resources: dict[str, int] = {}
    on_node = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name and is_plugin(p)]
    if not on_node and not departed:
        return None
    for pod in sorted(on_node, key=lambda p: int((p.get("metadata") or {}).get("resourceVersion") or 0)):
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        for ad in advertisements(pod, node, lookup, pods):
            if not ad.error and _container_ready(pod, ad.container):
                resources.update(ad.resources)  # a later registration of a resource replaces the earlier endpoint
                annotations.update(ad.annotations)
    known = {r for r in capacity if r in PLUGIN_RESOURCES or r.startswith(("nvidia.com/gpu.", "nvidia.com/mig-"))}
    for resource in known | set(resources):
        if resource in resources:
            capacity[resource] = allocatable[resource] = str(resources[resource])
        else:
            allocatable[resource] = "0"  # its plugin went away: devices unhealthy, capacity kept
    return capacity, allocatable, annotations

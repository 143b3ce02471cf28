"""Decoding of the Kubernetes protobuf request bodies some Go clients send.

client-go's typed clients (helm's release storage among them) write core objects as
``application/vnd.kubernetes.protobuf`` and do not fall back to JSON. The server answers in JSON
(clients decode by the response's Content-Type), so only decoding is needed, and only for the
kinds those clients write: Secret, ConfigMap, Namespace and DeleteOptions, plus the Deployments
(``kubectl create deployment``) and Pods (``kubectl run``) kubectl writes, with the fields those
commands set (replicas, selector labels, template labels, containers' name, image, command, args,
ports, env values); other fields of those two kinds are not decoded. Other kinds answer 415.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any, Callable, Optional

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs; value is an int for varints, bytes for length-delimited fields."""
    out = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire == 1:
            value = int.from_bytes(data[position : position + 8], "little")
            position += 8
        elif wire == 5:
            value = int.from_bytes(data[position : position + 4], "little")
            position += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


def _string(value: bytes) -> str:
    return value.decode()


def _map(entries: list[bytes], value_decoder: Callable[[bytes], Any]) -> dict:
    result = {}
    for entry in entries:
        parts = dict(fields(entry))
        result[_string(parts.get(1, b""))] = value_decoder(parts.get(2, b""))
    return result


def _time(value: bytes) -> str:
    parts = dict(fields(value))
    stamp = datetime.datetime.fromtimestamp(parts.get(1, 0), tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _owner_reference(value: bytes) -> dict:
    parts = fields(value)
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    ref: dict[str, Any] = {}
    for number, item in parts:
        if number in names:
            ref[names[number]] = _string(item)
        elif number == 6:
            ref["controller"] = bool(item)
        elif number == 7:
            ref["blockOwnerDeletion"] = bool(item)
    return ref


def object_meta(data: bytes) -> dict:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    labels: list[bytes] = []
    annotations: list[bytes] = []
    for number, value in fields(data):
        if number in strings:
            meta[strings[number]] = _string(value)
        elif number == 7 and value:
            meta["generation"] = _signed(value)
        elif number == 8 and dict(fields(value)).get(1):  # Go's zero time is null in JSON
            meta["creationTimestamp"] = _time(value)
        elif number == 11:
            labels.append(value)
        elif number == 12:
            annotations.append(value)
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner_reference(value))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_string(value))
    if labels:
        meta["labels"] = _map(labels, _string)
    if annotations:
        meta["annotations"] = _map(annotations, _string)
    return {k: v for k, v in meta.items() if v not in ("", None)}


def _secret(raw: bytes) -> dict:
    obj: dict[str, Any] = {}
    data: list[bytes] = []
    string_data: list[bytes] = []
    for number, value in fields(raw):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            data.append(value)
        elif number == 3:
            obj["type"] = _string(value)
        elif number == 4:
            string_data.append(value)
        elif number == 5:
            obj["immutable"] = bool(value)
    if data:
        obj["data"] = _map(data, lambda v: base64.b64encode(v).decode())
    if string_data:
        obj["stringData"] = _map(string_data, _string)
    return obj


def _config_map(raw: bytes) -> dict:
    obj: dict[str, Any] = {}
    data: list[bytes] = []
    binary: list[bytes] = []
    for number, value in fields(raw):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            data.append(value)
        elif number == 3:
            binary.append(value)
        elif number == 4:
            obj["immutable"] = bool(value)
    if data:
        obj["data"] = _map(data, _string)
    if binary:
        obj["binaryData"] = _map(binary, lambda v: base64.b64encode(v).decode())
    return obj


def _namespace(raw: bytes) -> dict:
    obj: dict[str, Any] = {}
    for number, value in fields(raw):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            finalizers = [_string(v) for n, v in fields(value) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _delete_options(raw: bytes) -> dict:
    options: dict[str, Any] = {}
    for number, value in fields(raw):
        if number == 1:
            options["gracePeriodSeconds"] = _signed(value)
        elif number == 2:
            pre = dict(fields(value))
            options["preconditions"] = {k: _string(pre[n]) for n, k in ((1, "uid"), (2, "resourceVersion")) if n in pre}
        elif number == 4:
            options["propagationPolicy"] = _string(value)
        elif number == 5:
            options.setdefault("dryRun", []).append(_string(value))
    return options


def _label_selector(raw: bytes) -> dict:
    labels = [value for number, value in fields(raw) if number == 1]
    return {"matchLabels": _map(labels, _string)} if labels else {}


def _container(raw: bytes) -> dict:
    container: dict[str, Any] = {}
    for number, value in fields(raw):
        if number == 1:
            container["name"] = _string(value)
        elif number == 2:
            container["image"] = _string(value)
        elif number in (3, 4):
            container.setdefault("command" if number == 3 else "args", []).append(_string(value))
        elif number == 6:
            port = dict(fields(value))
            entry: dict[str, Any] = {"containerPort": port.get(3, 0)}
            if port.get(1):
                entry["name"] = _string(port[1])
            entry["protocol"] = _string(port.get(4, b"TCP")) or "TCP"
            container.setdefault("ports", []).append(entry)
        elif number == 7:
            env = dict(fields(value))
            container.setdefault("env", []).append({"name": _string(env.get(1, b"")), "value": _string(env.get(2, b""))})
        elif number == 8:
            container["resources"] = {}
        elif number == 14:
            container["imagePullPolicy"] = _string(value)
    # Go writes empty strings of optional fields; JSON omits them (omitempty)
    return {k: v for k, v in container.items() if v != ""}


def _pod_spec(raw: bytes) -> dict:
    spec: dict[str, Any] = {"containers": []}
    node_selector: list[bytes] = []
    for number, value in fields(raw):
        if number == 2:
            spec["containers"].append(_container(value))
        elif number == 3:
            spec["restartPolicy"] = _string(value)
        elif number == 7:
            node_selector.append(value)
        elif number == 10:
            spec["nodeName"] = _string(value)
    if node_selector:
        spec["nodeSelector"] = _map(node_selector, _string)
    return {k: v for k, v in spec.items() if v != ""}


def _pod(raw: bytes) -> dict:
    obj: dict[str, Any] = {}
    for number, value in fields(raw):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            obj["spec"] = _pod_spec(value)
    return obj


def _deployment(raw: bytes) -> dict:
    obj: dict[str, Any] = {}
    for number, value in fields(raw):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            spec: dict[str, Any] = {}
            for field, item in fields(value):
                if field == 1:
                    spec["replicas"] = _signed(item)
                elif field == 2:
                    spec["selector"] = _label_selector(item)
                elif field == 3:
                    spec["template"] = _pod(item)
                elif field == 4:
                    spec["strategy"] = {}
            obj["spec"] = spec
    return obj


_DECODERS: dict[tuple[str, str], Callable[[bytes], dict]] = {
    ("v1", "Secret"): _secret,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Namespace"): _namespace,
    ("v1", "DeleteOptions"): _delete_options,
    ("v1", "Pod"): _pod,
    ("apps/v1", "Deployment"): _deployment,
    ("meta.k8s.io/v1", "DeleteOptions"): _delete_options,
}


def decode(body: bytes) -> Optional[dict]:
    """The object of a protobuf request body as JSON-style dict, or None for an unsupported kind."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body without the k8s\\0 prefix")
    envelope = dict(fields(body[len(MAGIC) :]))
    type_meta = dict(fields(envelope.get(1, b"")))
    api_version, kind = _string(type_meta.get(1, b"")), _string(type_meta.get(2, b""))
    decoder = _DECODERS.get((api_version, kind))
    if decoder is None:
        return None
    obj = decoder(envelope.get(2, b""))
    if not kind.endswith("Options"):
        obj = {"apiVersion": api_version, "kind": kind, **obj}
    return obj

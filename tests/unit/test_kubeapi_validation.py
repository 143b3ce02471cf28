"""Object name, label and annotation rules of the test API server; protobuf request decoding."""

from __future__ import annotations

import pytest

from tests.support.kubeapi import protobuf
from tests.support.kubeapi.store import normalize_quantities
from tests.support.kubeapi.validation import label_key_errors, label_value_errors, metadata_errors, name_errors


@pytest.mark.parametrize(
    ("plural", "name", "valid"),
    [
        ("nodes", "gpu-node-1", True),
        ("nodes", "ip-10-0-0-1.ec2.internal", True),
        ("nodes", "GPU-node", False),
        ("nodes", "-node", False),
        ("nodes", "a" * 254, False),
        ("namespaces", "gpu.operator", False),
        ("namespaces", "gpu-operator", True),
        ("clusterroles", "system:node", True),
        ("clusterroles", "a/b", False),
        ("customresourcedefinitions", "profiles.openfaas.com", True),
        ("services", "gpu-demo", True),
        ("services", "1gpu", False),
        ("services", "gpu.demo", False),
        ("pods", "1gpu", True),
    ],
)
def test_object_names(plural, name, valid):
    assert (name_errors(plural, name) == []) is valid


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("nvidia.com/gpu.product", True),
        ("app", True),
        ("A_b.c-d", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("/x", False),
        ("x/", False),
        ("Nvidia.com/x", False),
        ("bad key", False),
        ("a/b/c", False),
    ],
)
def test_label_keys(key, valid):
    assert (label_key_errors(key) == []) is valid


@pytest.mark.parametrize(
    ("value", "valid"), [("", True), ("Tesla-V100", True), ("a" * 64, False), ("-x", False), ("a b", False), (1, False)]
)
def test_label_values(value, valid):
    assert (label_value_errors(value) == []) is valid


def test_metadata_errors_name_the_field_and_value():
    problems = metadata_errors("nodes", {"metadata": {"name": "n", "labels": {"ok": "x", "bad": "y z"}, "annotations": {"a": 1}}})
    assert [(field, value) for field, value, _message in problems] == [("metadata.labels", "y z"), ("metadata.annotations", 1)]
    assert metadata_errors("nodes", {"metadata": {}})[0][0] == "metadata.name"


def _varint(number: int) -> bytes:
    out = b""
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(key: str, value: bytes) -> bytes:
    return _field(1, key.encode()) + _field(2, value)


def test_protobuf_secret_is_decoded_as_client_go_encodes_it():
    """The body is built by hand with the wire format client-go uses (runtime.Unknown around a v1.Secret)."""
    metadata = _field(1, b"sh.helm.release.v1.demo.v1") + _field(3, b"default") + _field(11, _entry("owner", b"helm"))
    secret = _field(1, metadata) + _field(2, _entry("release", b"\x00\x01binary")) + _field(3, b"helm.sh/release.v1")
    envelope = _field(1, _field(1, b"v1") + _field(2, b"Secret")) + _field(2, secret)
    decoded = protobuf.decode(protobuf.MAGIC + envelope)
    assert decoded == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sh.helm.release.v1.demo.v1", "namespace": "default", "labels": {"owner": "helm"}},
        "data": {"release": "AAFiaW5hcnk="},
        "type": "helm.sh/release.v1",
    }


def test_protobuf_of_an_unknown_kind_is_not_guessed():
    envelope = _field(1, _field(1, b"apps/v1") + _field(2, b"StatefulSet")) + _field(2, b"")
    assert protobuf.decode(protobuf.MAGIC + envelope) is None
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(b"{}")


def test_protobuf_deployment_as_kubectl_create_deployment_writes_it():
    """Field numbers of k8s.io/api apps/v1 and core/v1 generated.proto; Go's empty strings and zero times omitted."""
    meta = _field(1, b"web") + _field(11, _field(1, b"app") + _field(2, b"web"))
    port = _varint(3 << 3) + _varint(80) + _field(4, b"TCP")
    container = _field(1, b"nginx") + _field(2, b"nginx:1.27") + _field(6, port) + _field(8, b"") + _field(14, b"")
    template = _field(1, _field(11, _field(1, b"app") + _field(2, b"web")) + _field(8, b"")) + _field(2, _field(2, container))
    spec = (
        _varint(1 << 3)
        + _varint(2)
        + _field(2, _field(1, _field(1, b"app") + _field(2, b"web")))
        + _field(3, template)
        + _field(4, b"")
    )
    envelope = _field(1, _field(1, b"apps/v1") + _field(2, b"Deployment")) + _field(2, _field(1, meta) + _field(2, spec))
    assert protobuf.decode(protobuf.MAGIC + envelope) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {},
                        }
                    ]
                },
            },
            "strategy": {},
        },
    }


def test_resource_quantities_read_back_as_strings_like_kubernetes():
    pod = {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": 1, "cpu": 0.5}, "requests": {"memory": "1Gi"}}}]}}
    normalized = normalize_quantities(pod)
    assert normalized["spec"]["containers"][0]["resources"] == {
        "limits": {"nvidia.com/gpu": "1", "cpu": "500m"},
        "requests": {"memory": "1Gi"},
    }
    assert normalize_quantities({"spec": {"replicas": 1}}) == {"spec": {"replicas": 1}}

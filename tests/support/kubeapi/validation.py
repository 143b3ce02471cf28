"""Name, label and annotation validation with the API server's rules and messages."""

from __future__ import annotations

import functools
import re

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
    "and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
    "'[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

# Kinds whose names are DNS-1123 labels rather than subdomains.
LABEL_NAMED = {"namespaces"}
# Kinds whose names are DNS-1035 labels (they become DNS names: a Service's must start with a letter).
DNS1035_NAMED = {"services"}
# Kinds whose names only have to be valid path segments (RBAC allows ':' as in system:node).
PATH_SEGMENT_NAMED = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}


def subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(SUBDOMAIN_MESSAGE)
    return errors


def dns_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.fullmatch(value):
        errors.append(LABEL_MESSAGE)
    return errors


def dns1035_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1035_LABEL.fullmatch(value):
        errors.append(DNS1035_MESSAGE)
    return errors


def name_errors(plural: str, name: str) -> list[str]:
    """Errors of an object name for the given resource (empty when valid)."""
    if plural in PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [f"may not be '.' or '..' and may not contain '/' or '%': {name!r}"]
        return []
    if plural in LABEL_NAMED:
        return dns_label_errors(name)
    if plural in DNS1035_NAMED:
        return dns1035_label_errors(name)
    return subdomain_errors(name)


def label_key_errors(key: str) -> list[str]:
    """Errors of a label or annotation key: optional DNS subdomain prefix, '/', and a qualified name."""
    if not isinstance(key, str):
        return ["key must be a string"]
    return list(_label_key_errors(key))


@functools.lru_cache(maxsize=4096)
def _label_key_errors(key: str) -> tuple[str, ...]:
    """label_key_errors of a string (a fleet's objects repeat their keys: each is checked once)."""
    prefix, slash, name = key.rpartition("/")
    errors = []
    if slash:
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {message}" for message in subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    else:
        if len(name) > 63:
            errors.append("name part must be no more than 63 characters")
        if not _QUALIFIED_NAME.fullmatch(name):
            errors.append(QUALIFIED_NAME_MESSAGE)
    return tuple(errors)


def label_value_errors(value: object) -> list[str]:
    if not isinstance(value, str):
        return ["label values must be strings"]
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(LABEL_VALUE_MESSAGE)
    return errors


def metadata_errors(plural: str, obj: dict) -> list[tuple[str, object, str]]:
    """(field, bad value, message) for each problem of an object's name, labels and annotations."""
    problems: list[tuple[str, object, str]] = []
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        problems.append(("metadata.name", name or "", "name or generateName is required"))
    else:
        problems.extend(("metadata.name", name, message) for message in name_errors(plural, name))
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict):
        problems.append(("metadata.labels", labels, "must be a map of strings"))
        labels = {}
    for key, value in labels.items():
        problems.extend(("metadata.labels", key, message) for message in label_key_errors(key))
        problems.extend(("metadata.labels", value, message) for message in label_value_errors(value))
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        problems.append(("metadata.annotations", annotations, "must be a map of strings"))
        annotations = {}
    for key, value in annotations.items():
        problems.extend(("metadata.annotations", key, message) for message in label_key_errors(key))
        if not isinstance(value, str):
            problems.append(("metadata.annotations", value, "annotation values must be strings"))
    if sum(len(k) + len(v) for k, v in annotations.items() if isinstance(v, str)) > 256 * 1024:
        problems.append(("metadata.annotations", "", "Too long: must have at most 262144 bytes"))
    return problems

"""OpenAPI v3 (per group-version) and v2 documents generated from the catalogue.

They carry what clients look for: every path with its operations, the
``x-kubernetes-group-version-kind`` and ``x-kubernetes-action`` extensions, and the query
parameters (``fieldValidation``, ``dryRun``, ``fieldManager``, ``force``) that kubectl and helm check
before they leave validation to the server. Schemas are open objects (CRDs: their own schema).
"""

from __future__ import annotations

import hashlib
import json

from .catalogue import ResourceType

_WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")


def _definition_name(rtype: ResourceType) -> str:
    if rtype.custom:
        return ".".join([*reversed(rtype.group.split(".")), rtype.version, rtype.kind])
    group = rtype.group.split(".")[0] if rtype.group else "core"
    return f"io.k8s.api.{group}.{rtype.version}.{rtype.kind}"


def _gvk(rtype: ResourceType) -> dict:
    return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}


def _schema(rtype: ResourceType) -> dict:
    if rtype.custom and rtype.schema:
        schema = json.loads(json.dumps(rtype.schema))
    else:
        schema = {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-preserve-unknown-fields": True,
        }
    schema["x-kubernetes-group-version-kind"] = [_gvk(rtype)]
    return schema


def _base(rtype: ResourceType) -> str:
    prefix = f"/apis/{rtype.group}/{rtype.version}" if rtype.group else "/api/v1"
    return f"{prefix}/namespaces/{{namespace}}/{rtype.plural}" if rtype.namespaced else f"{prefix}/{rtype.plural}"


def _operation(rtype: ResourceType, action: str, v3: bool, extra: tuple[str, ...] = ()) -> dict:
    def parameter(name: str) -> dict:
        if v3:
            return {
                "name": name,
                "in": "query",
                "schema": {"type": "boolean" if name == "force" else "string", "uniqueItems": True},
            }
        return {"name": name, "in": "query", "type": "boolean" if name == "force" else "string", "uniqueItems": True}

    names = {"patch": (*_WRITE_PARAMETERS, "force"), "put": _WRITE_PARAMETERS, "post": _WRITE_PARAMETERS}.get(action, ())
    verb = {
        "get": "read",
        "list": "list",
        "post": "create",
        "put": "replace",
        "patch": "patch",
        "delete": "delete",
        "deletecollection": "deletecollection",
    }[action]
    group_word = rtype.group.split(".")[0].title()
    operation = {
        "operationId": f"{verb}{group_word}{rtype.version.title()}{'Namespaced' if rtype.namespaced else ''}{rtype.kind}",
        "parameters": [parameter(name) for name in (*names, *extra)],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rtype),
    }
    if v3:
        ref = {"$ref": f"#/components/schemas/{_definition_name(rtype)}"}
        operation["responses"]["200"]["content"] = {"application/json": {"schema": ref}}
        if action in ("put", "post", "patch"):
            operation["requestBody"] = {"content": {"*/*": {"schema": {"type": "object"}}}, "required": True}
    else:
        operation["responses"]["200"]["schema"] = {"$ref": f"#/definitions/{_definition_name(rtype)}"}
    return operation


def _paths(rtype: ResourceType, v3: bool) -> dict:
    base = _base(rtype)
    paths = {
        base: {
            "get": _operation(rtype, "list", v3, ("labelSelector", "fieldSelector", "limit", "continue", "watch")),
            "post": _operation(rtype, "post", v3),
            "delete": _operation(rtype, "deletecollection", v3),
        },
        f"{base}/{{name}}": {
            "get": _operation(rtype, "get", v3),
            "put": _operation(rtype, "put", v3),
            "patch": _operation(rtype, "patch", v3),
            "delete": _operation(rtype, "delete", v3),
        },
    }
    for sub in rtype.subresources:
        paths[f"{base}/{{name}}/{sub}"] = {
            "get": _operation(rtype, "get", v3),
            "put": _operation(rtype, "put", v3),
            "patch": _operation(rtype, "patch", v3),
        }
    return paths


def v3_group_version(types: list[ResourceType], title: str) -> dict:
    paths: dict = {}
    schemas: dict = {}
    for rtype in types:
        paths.update(_paths(rtype, v3=True))
        schemas[_definition_name(rtype)] = _schema(rtype)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": title},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def v3_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else "api/v1"


def v3_root(documents: dict[str, dict]) -> dict:
    """``/openapi/v3``: each group-version with a URL whose hash changes with its document."""
    paths = {}
    for key, document in documents.items():
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def v2_document(types: list[ResourceType], title: str) -> dict:
    paths: dict = {}
    definitions: dict = {}
    for rtype in types:
        paths.update(_paths(rtype, v3=False))
        definitions[_definition_name(rtype)] = _schema(rtype)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": title}, "paths": paths, "definitions": definitions}

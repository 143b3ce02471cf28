"""Output negotiation by the ``Accept`` header's ``as``/``g``/``v`` parameters, as kube-apiserver does it.

Read in kube-apiserver's source (``staging/src/k8s.io/apiserver/pkg/endpoints/handlers``):

- ``negotiation/negotiate.go`` ``NegotiateMediaTypeOptions``: the Accept header's media ranges are tried in
  order (goautoneg orders them by ``q``); a range whose type the server serves (``application/json``,
  ``application/*``, ``*/*``) and whose ``as``/``g``/``v`` the endpoint ``AllowsConversion`` wins; a range it
  cannot serve is skipped; when none wins the server answers its first media type, JSON, unconverted (so
  ``as=Foo`` or ``v=v2`` alone gets the plain object, not a 406).
- ``rest.go`` ``AllowsConversion``: ``Table``, ``PartialObjectMetadata`` and ``PartialObjectMetadataList`` of
  ``meta.k8s.io/v1`` or ``v1beta1`` only (Table only for JSON and YAML).
- ``response.go`` ``asPartialObjectMetadata`` / ``asPartialObjectMetadataList``: the object's whole
  ``metadata`` (managedFields included) under ``kind: PartialObjectMetadata``, ``apiVersion: meta.k8s.io/v1``;
  a list keeps its list metadata (``resourceVersion``, ``continue``, ``remainingItemCount``) and each item
  carries its own kind and apiVersion. Asking ``PartialObjectMetadata`` of a list, or ``PartialObjectMetadataList``
  of a single object, is 406 ``NotAcceptable`` with the wording below (the Go type printed as the internal one,
  e.g. ``*core.NodeList``).

Not simulated: protobuf and YAML output (a protobuf range is skipped: this server answers JSON only; clients
decode by the response's Content-Type), ``pretty``, ``sv``, ``export``.
"""

from __future__ import annotations

from typing import Optional

from .catalogue import ResourceType
from .errors import ApiError

META_GROUP = "meta.k8s.io"
META_VERSIONS = ("v1", "v1beta1")
CONVERSIONS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")
# media types whose ranges this server can answer (it writes JSON only)
SERVED = ("application/json", "application/*", "*/*")


def _ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """(media type, parameters) of each range, highest ``q`` first (stable for equal ``q``, as sent)."""
    ranges = []
    for position, media_range in enumerate(accept.split(",")):
        parts = media_range.split(";")
        media_type = parts[0].strip().lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            key, _sep, value = part.strip().partition("=")
            params[key.strip()] = value.strip()
        try:
            quality = float(params.pop("q", "1") or 1)
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append((-quality, position, media_type, params))
    return [(media_type, params) for _q, _position, media_type, params in sorted(ranges)]


def negotiate(accept: str) -> Optional[tuple[str, str]]:
    """``(kind, version)`` of ``meta.k8s.io`` the answer is to be converted to, or None for the object itself."""
    for media_type, params in _ranges(accept or ""):
        if media_type not in SERVED:
            continue
        if not any(key in params for key in ("as", "g", "v")):
            return None
        if params.get("as") in CONVERSIONS and params.get("g") == META_GROUP and params.get("v") in META_VERSIONS:
            return params["as"], params["v"]
    return None


def _go_type(rtype: ResourceType, is_list: bool) -> str:
    """The Go type kube-apiserver prints: the internal type of a built-in kind (``*core.Node``, ``*apps.DaemonSetList``),
    ``*unstructured.Unstructured`` for custom resources."""
    if rtype.custom:
        return "*unstructured.UnstructuredList" if is_list else "*unstructured.Unstructured"
    package = rtype.group.split(".")[0] if rtype.group else "core"
    return f"*{package}.{rtype.kind}{'List' if is_list else ''}"


def partial(obj: dict, version: str) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"{META_GROUP}/{version}", "metadata": obj.get("metadata") or {}}


def as_metadata(rtype: ResourceType, answer: dict, target: str, version: str) -> dict:
    """A get or list answer of ``rtype`` converted to ``target`` (a PartialObjectMetadata kind)."""
    is_list = "items" in answer
    if target == "PartialObjectMetadata":
        if is_list:
            message = f"you requested PartialObjectMetadata, but the requested object is a list ({_go_type(rtype, True)})"
            raise ApiError(406, message, "NotAcceptable")
        return partial(answer, version)
    if not is_list:
        message = f"you requested PartialObjectMetadataList, but the requested object is not a list ({_go_type(rtype, False)})"
        raise ApiError(406, message, "NotAcceptable")
    list_metadata = {
        key: value
        for key, value in (answer.get("metadata") or {}).items()
        if key in ("resourceVersion", "continue", "remainingItemCount", "selfLink")
    }
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": list_metadata,
        "items": [partial(item, version) for item in answer.get("items") or []],
    }

"""Kubernetes ``Status`` errors, with the reasons and messages the API server uses."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: Optional[str] = None, details: Optional[dict] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(resource: str, group: str, name: str, **extra) -> dict:
    details = {"name": name, **({"group": group} if group else {}), "kind": resource}
    details.update(extra)
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{qualified} "{name}" not found', "NotFound", _details(resource, group, name))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(409, f'{qualified} "{name}" already exists', "AlreadyExists", _details(resource, group, name))


def conflict(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    message = (
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, message, "Conflict", _details(resource, group, name))


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One cause of a 422 ``Invalid``, worded like the API server's ``field.Error``.

    ``type`` is one of ``Invalid``, ``Required``, ``NotSupported``, ``Duplicate``, ``Forbidden``, ``TooLong``, ``TooMany``;
    ``supported`` lists the values a ``NotSupported`` error offers; ``shown`` replaces the JSON
    rendering of ``value`` (e.g. a Go struct literal for ``Duplicate``).
    """

    field: str
    type: str
    value: object = None
    detail: str = ""
    supported: tuple[str, ...] = ()
    shown: Optional[str] = None

    def _value(self) -> str:
        if self.shown is not None:
            return self.shown
        return json.dumps(self.value, ensure_ascii=False)

    def body(self) -> str:
        """The message without the field, as in ``Status.details.causes[].message``."""
        if self.type == "Required":
            text = "Required value"
        elif self.type == "Forbidden":
            text = "Forbidden"
        elif self.type == "NotSupported":
            text = f"Unsupported value: {self._value()}"
            if self.supported:
                text += ": supported values: " + ", ".join(f'"{v}"' for v in self.supported)
        elif self.type == "Duplicate":
            text = f"Duplicate value: {self._value()}"
        elif self.type == "TooLong":
            text = "Too long"
        elif self.type == "TooMany":
            text = f"Too many: {len(self.value) if isinstance(self.value, list) else self._value()}"
        else:
            text = f"Invalid value: {self._value()}"
        return f"{text}: {self.detail}" if self.detail else text

    def cause(self) -> dict:
        return {"reason": f"FieldValue{self.type}", "message": self.body(), "field": self.field}


def invalid_fields(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per error; several errors are listed in brackets, as the API server does."""
    causes = [error.cause() for error in errors]
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        f'{qualified} "{name}" is invalid: {summary}',
        "Invalid",
        {"name": name, **({"group": group} if group else {}), "kind": kind, "causes": causes},
    )


def invalid(kind: str, group: str, name: str, problems: list[tuple[str, object, str]]) -> ApiError:
    """422 Invalid from (field, bad value, message) triples (each an ``Invalid value`` cause)."""
    return invalid_fields(kind, group, name, [FieldError(field, "Invalid", value, message) for field, value, message in problems])


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")

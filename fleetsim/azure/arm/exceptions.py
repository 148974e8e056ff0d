"""ARM's error answers, one class per ``error.code`` fleetsim returns, each with its HTTP status
(Azure REST API reference, "Common error codes"; the codes and statuses the HybridCompute swagger's
``ErrorResponse`` carries, as the azure-mgmt SDKs raise them: ``HttpResponseError`` with ``error.code``).
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer as ARM sends it."""
    return Response(json.dumps(body), status, headers=headers, mimetype="application/json")


class ArmError(Exception):
    """An ARM error answer: HTTP status, ``error.code`` and ``error.message`` (and ``details``)."""

    status = 500
    code = "InternalServerError"

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details

    def response(self) -> Response:
        """The error as ARM answers it: ``{"error": {"code", "message"[, "details"]}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return json_response({"error": error}, self.status)


class AuthenticationFailed(ArmError):
    status = 401
    code = "AuthenticationFailed"


class BadRequest(ArmError):
    status = 400
    code = "BadRequest"


class Conflict(ArmError):
    status = 409
    code = "Conflict"


class InternalServerError(ArmError):
    status = 500
    code = "InternalServerError"


class InvalidParameter(ArmError):
    status = 400
    code = "InvalidParameter"


class InvalidRequestContent(ArmError):
    status = 400
    code = "InvalidRequestContent"


class InvalidSkipToken(ArmError):
    status = 400
    code = "InvalidSkipToken"


class MethodNotAllowed(ArmError):
    status = 405
    code = "MethodNotAllowed"


class NotFound(ArmError):
    status = 404
    code = "NotFound"


class ResourceGroupNotFound(ArmError):
    status = 404
    code = "ResourceGroupNotFound"


class ResourceNotFound(ArmError):
    status = 404
    code = "ResourceNotFound"


class SubscriptionNotFound(ArmError):
    status = 404
    code = "SubscriptionNotFound"

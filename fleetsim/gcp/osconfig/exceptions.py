"""OS Config's error answers, one class per google.rpc status fleetsim returns, each with its HTTP status
(Google Cloud API design guide, "Errors" > "Error codes"; the JSON error body Google's REST front end
sends, ``{"error": {"code", "message", "status"}}``, which google-api-core raises as ``BadRequest``,
``PermissionDenied``, ``NotFound`` or ``FailedPrecondition``).

The classes are :class:`fleetsim.gcp.GcpError` subclasses, so the errors of the helpers OS Config shares
with Compute Engine (``json_body``, ``page_offset``: 400 ``INVALID_ARGUMENT``) are answered the same way.
"""

from __future__ import annotations

from fleetsim.gcp import GcpError


class OsConfigError(GcpError):
    """An OS Config error answer: HTTP status (``code``), google.rpc ``status`` and a message naming the
    value."""

    code = 500
    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(type(self).code, message, status=type(self).status)


class FailedPrecondition(OsConfigError):
    code = 400
    status = "FAILED_PRECONDITION"


class InvalidArgument(OsConfigError):
    code = 400
    status = "INVALID_ARGUMENT"


class NotFound(OsConfigError):
    code = 404
    status = "NOT_FOUND"


class PermissionDenied(OsConfigError):
    code = 403
    status = "PERMISSION_DENIED"

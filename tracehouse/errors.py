"""One error hierarchy for tracehouse, mapped once to Langfuse-shaped JSON replies.

Every error body is ``{"message": ..., "error": <ErrorName>}`` (plus optional details), which is
what the official SDKs parse.
"""

from __future__ import annotations

from typing import Any


class TracehouseError(Exception):
    """Base of all errors that become an HTTP reply."""

    status: int = 500
    error: str = "InternalServerError"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "error": self.error}
        if self.details is not None:
            out["details"] = self.details
        return out

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInput(TracehouseError):
    """Bad input: names the field and the rule it broke."""

    status = 400
    error = "InvalidRequestError"

    def __init__(self, field: str | None, message: str, *, details: Any = None) -> None:
        self.field = field
        text = f"{field}: {message}" if field else message
        super().__init__(text, details=details)


class Unauthorized(TracehouseError):
    status = 401
    error = "UnauthorizedError"


class Forbidden(TracehouseError):
    status = 403
    error = "AccessDeniedError"


class NotFound(TracehouseError):
    status = 404
    error = "LangfuseNotFoundError"


class MethodNotAllowed(TracehouseError):
    status = 405
    error = "MethodNotAllowedError"


class Conflict(TracehouseError):
    status = 409
    error = "ConflictError"


class PayloadTooLarge(TracehouseError):
    status = 413
    error = "PayloadTooLargeError"


class Overloaded(TracehouseError):
    """The write path is full: the client should retry later. Nothing was accepted."""

    status = 503
    error = "ServiceUnavailableError"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(Overloaded):
    status = 429
    error = "TooManyRequestsError"

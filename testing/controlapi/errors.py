"""The refusals the fake control plane answers with, independent of the wire format.

State modules raise `ApiError(status=..., message=...)`; the HTTP layer renders it as Tailscale's
`{"message": ...}` or as Headscale's gRPC-gateway status `{"code", "message", "details"}`.
Messages must never contain a secret (an authkey, a client secret, an access token): build them
from identifiers and field names only.
"""

from __future__ import annotations

# HTTP status -> gRPC code, as grpc-gateway maps them back (google.golang.org/grpc/codes).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 501: 12, 503: 14}


class ApiError(Exception):
    """A request the fake refuses, with the HTTP status the real service would use."""

    def __init__(self, *, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message

    @property
    def grpc_code(self) -> int:
        """The gRPC status code Headscale would put in the body (2 = Unknown otherwise)."""
        return _GRPC_CODES.get(self.status, 2)


class RegistrationError(Exception):
    """A simulated tailscaled could not join with the authkey it was given."""

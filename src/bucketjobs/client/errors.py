"""What the SDK raises: the API's own error, with its MAPI `code`."""

from __future__ import annotations

from typing import Any


class MapiError(Exception):
    """The API refused a call: `status` (HTTP), `code` (`INVALID_REQUEST`, `NOT_FOUND`,
    `CONFLICT`, ...), `message` and `details` as the API sent them."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(f"{code}: {message}" + (f" ({details})" if details else ""))
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_body(cls, status: int, body: Any) -> MapiError:
        """From an error body (`{"code", "message", "details"}`) or an OAuth one."""
        if isinstance(body, dict):
            if "code" in body:
                return cls(status, str(body["code"]), str(body.get("message", "")),
                           str(body.get("details") or ""))  # fmt: skip
            if "error" in body:  # the token endpoint answers as OAuth does
                code = "UNAUTHORIZED" if status == 401 else str(body["error"]).upper()
                return cls(status, code, str(body.get("error_description", body["error"])))
        return cls(status, f"HTTP_{status}", "the server answered without an error body")


class NotLoggedIn(MapiError):
    """No credentials to call with (log in first)."""

    def __init__(self) -> None:
        super().__init__(401, "UNAUTHORIZED", "not logged in")

"""What the E-Cash client raises. Messages name codes and operations, never a secret."""

from __future__ import annotations

from worker.ecash.codes import CallClass, describe, is_fatal_config_code

__all__ = ["ApiError", "ApiUnavailable", "EcashError", "FatalConfigError", "LoginFailed"]


class EcashError(Exception):
    """Base of the client's errors."""


class FatalConfigError(EcashError):
    """Our configuration is wrong: Login was refused (INVALID_CREDENTIAL, NOT_ALLOWED, ...) or the
    credentials cannot be built. Nothing will work until an operator fixes it; retrying as is may get
    the agent blocked."""

    def __init__(self, code: str | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)

    @classmethod
    def login_refused(cls, code: str) -> FatalConfigError:
        return cls(code, f"login refused: {describe(code)}")


class ApiError(EcashError):
    """A read operation was answered with something other than PROCESSED."""

    def __init__(self, operation: str, code: str | None, detail: str = "") -> None:
        self.operation = operation
        self.code = code
        self.detail = detail
        message = f"{operation} answered {describe(code)}"
        super().__init__(f"{message}: {detail}" if detail else message)

    @property
    def fatal_config(self) -> bool:
        return is_fatal_config_code(self.code)


class ApiUnavailable(EcashError):
    """A read operation got no usable answer, even after its retries."""

    def __init__(self, operation: str, call_class: CallClass, evidence: str) -> None:
        self.operation = operation
        self.call_class = call_class
        self.evidence = evidence
        super().__init__(f"{operation}: no usable answer ({call_class}): {evidence}")


class LoginFailed(EcashError):
    """Login did not give a token, for a reason that is not our configuration (transport failure,
    GENERAL_ERROR, an answer without a token). The call that needed the session was not sent."""

    def __init__(self, code: str | None, evidence: str, call_class: CallClass | None = None) -> None:
        self.code = code  # the login's response code, or None when no usable answer came back
        self.call_class = call_class  # not_sent / ambiguous when no usable answer came back
        self.evidence = evidence
        super().__init__(f"login failed: {evidence}")

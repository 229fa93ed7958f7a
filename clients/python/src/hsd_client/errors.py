"""Exceptions of hsd_client: one base class, one class per kind of failure.

Every bad input raises before anything is sent; every bad reply raises
before any of its bytes are handed to the caller.
"""

from __future__ import annotations


class HsdError(Exception):
    """Base class of everything hsd_client raises on purpose."""


class InvalidRequest(HsdError, ValueError):
    """A request field is outside what docs/protocol.md allows (nothing was sent)."""


class KeyFileError(HsdError, ValueError):
    """A keys file or key is malformed (docs/protocol.md §4, host/net/auth.h)."""


class ProtocolError(HsdError):
    """Bytes that are not a valid protocol message.

    ``code`` is the ERROR code (an ``ErrorCode``) a receiver would answer
    with, per the decoding table of docs/protocol.md §3.
    """

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class VerificationError(HsdError):
    """A well-formed reply that does not answer the request that was sent
    (other request id, steps, sampler, split, shapes, sampler state)."""


class TransportError(HsdError):
    """nng refused the endpoint or failed to send/receive (other than a timeout)."""


class NoReply(HsdError, TimeoutError):
    """No reply within the timeout (no service reachable, or it is too slow)."""


class ServerError(HsdError):
    """The service answered ERROR (docs/protocol.md §5.3).

    Attributes: ``code`` (int), ``name`` ("REPLAYED", ... or "UNKNOWN" for a
    code newer than this client), ``retry_after_ms`` (0 = no hint), ``text``
    (the service's reason, for people), ``request_id``.
    """

    def __init__(self, code: int, name: str, retry_after_ms: int, text: str, request_id: int,
                 hint: str = ""):
        super().__init__(f"{name} ({code}): {text}" + (
            f" (retry after {retry_after_ms} ms)" if retry_after_ms else "") +
            (f" ({hint})" if hint else ""))
        self.code = code
        self.name = name
        self.retry_after_ms = retry_after_ms
        self.text = text
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """Whether resending later may succeed (host/net/wire.h
        hsd_wire_error_retryable: BUSY, RATE_LIMITED, SHUTTING_DOWN, or any
        code with a retry hint)."""
        return self.name in ("BUSY", "RATE_LIMITED", "SHUTTING_DOWN") or self.retry_after_ms > 0

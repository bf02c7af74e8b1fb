"""Faults both fake control planes can switch on, per test (see README.md, "Faults").

``FaultSwitches`` holds the state and the test-facing methods; each fake
mixes it in and consults it at the points where Azure would misbehave:
``_request_fault`` at the top of its WSGI app (throttling, injected errors),
``_FaultyHandler`` before the app runs (connection resets), its blob PUT
handler (slow uploads), its long-running operations (long operations) and its
bearer-token check (expired tokens). Every fault that fires is appended to
``fault_log`` with the monotonic time it fired, so a test can show that it
happened without timing anything itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import WSGIRequestHandler

# The storage SDKs' own read timeouts, which a slowed upload must stay under so
# that the call succeeds, just slowly: azureml-core's artifact client passes
# timeout=30 to requests (azureml/_restclient/artifacts_client.py, TIMEOUT);
# azure-storage-blob reads for 60 s (azure/storage/blob/_shared/constants.py,
# READ_TIMEOUT). A margin is kept for the request's own work.
V1_UPLOAD_TIMEOUT_S = 30
V2_UPLOAD_TIMEOUT_S = 60

STAGES = ("image_pull", "model_download", "liveness_probe")


@dataclass
class FaultEvent:
    fault: str  # "throttle" | "fail" | "reset" | "slow_upload" | "expired_token" | "provisioning" | ...
    method: str
    path: str
    at: float  # time.monotonic() when it fired
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Rule:
    fault: str
    method: str
    fragment: str
    times: int
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: int = 0


@dataclass
class ProvisioningFailure:
    stage: str
    after_seconds: float
    code: str | None = None  # None: the stage's own code for the service kind
    message: str | None = None


class FaultSwitches:
    """Mixin: the fault API shared by FakeAzureMLv1 and FakeAzureMLv2."""

    _upload_timeout_s = V2_UPLOAD_TIMEOUT_S

    def _init_faults(self) -> None:
        self._fault_lock = threading.RLock()
        self._rules: list[_Rule] = []
        self.fault_log: list[FaultEvent] = []
        self.upload_delay_s = 0.0
        self.long_operation_s = 0.0
        self.long_operation_retry_after = 1
        self.token_lifetime_s = 3600
        self.strict_tokens = False
        self._provisioning_failures: list[ProvisioningFailure] = []

    # ------------------------------------------------------------------ test-facing API

    def slow_upload(self, seconds_per_request: float) -> None:
        """Every blob PUT (model files, block lists, metadata) answers after this many real seconds.

        0 switches it off. Refused at or above the storage SDK's read timeout
        (less a margin), where the upload would fail instead of being slow.
        """
        if not 0 <= seconds_per_request < self._upload_timeout_s - 5:
            raise ValueError(
                f"keep upload delays below {self._upload_timeout_s - 5} s: the storage SDK reads for "
                f"{self._upload_timeout_s} s, and a delay near that fails the upload instead of slowing it"
            )
        self.upload_delay_s = float(seconds_per_request)

    def long_operations(self, seconds: float, retry_after: int = 1) -> None:
        """Long-running operations started from now on stay in progress for ``seconds`` real seconds.

        Their status answers carry ``Retry-After: <retry_after>`` (whole
        seconds, as ARM sends it) instead of the fake's usual millisecond
        hint. 0 seconds restores the fast default.
        """
        if seconds < 0 or retry_after < 0 or int(retry_after) != retry_after:
            raise ValueError("seconds must be >= 0 and retry_after a whole number of seconds")
        self.long_operation_s = float(seconds)
        self.long_operation_retry_after = int(retry_after)

    def throttle(self, method: str, path_contains: str, times: int = 1, retry_after: int = 2) -> None:
        """The next ``times`` matching requests get 429 with Retry-After and ARM's throttling error."""
        self._add_rule(_Rule("throttle", method.upper(), path_contains, times, 429, retry_after=int(retry_after)))

    def fail_next_request(
        self, method: str, path_contains: str, status: int, code: str, message: str, times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with this error (e.g. 500, 503)."""
        self._add_rule(_Rule("fail", method.upper(), path_contains, times, status, code, message))

    def reset_next_request(self, method: str, path_contains: str, times: int = 1) -> None:
        """Accept the next ``times`` matching requests, then drop the TCP connection unanswered (RST)."""
        self._add_rule(_Rule("reset", method.upper(), path_contains, times))

    def expire_tokens(self, after_seconds: int) -> None:
        """From now on, tokens from the fake Entra ID expire after ``after_seconds``, and the
        control plane refuses an expired (or non-JWT) bearer token with 401 ExpiredAuthenticationToken."""
        if after_seconds < 1:
            raise ValueError("after_seconds must be at least 1")
        self.token_lifetime_s = int(after_seconds)
        self.strict_tokens = True

    def fail_provisioning(
        self, stage: str, *, after_seconds: float = 1.0, code: str | None = None, message: str | None = None
    ) -> None:
        """The next deployment (v2) / web service (v1) fails at ``stage`` after ``after_seconds``.

        ``stage`` is one of ``image_pull``, ``model_download``, ``liveness_probe``;
        the code and message default to Azure's for that stage (see README.md).
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
        with self._fault_lock:
            self._provisioning_failures.append(ProvisioningFailure(stage, after_seconds, code, message))

    def faults_fired(self, fault: str | None = None) -> list[FaultEvent]:
        with self._fault_lock:
            return [event for event in self.fault_log if fault is None or event.fault == fault]

    # ------------------------------------------------------------------ for the fakes

    def _add_rule(self, rule: _Rule) -> None:
        if rule.times < 1:
            raise ValueError("times must be at least 1")
        with self._fault_lock:
            self._rules.append(rule)

    def _take_rule(self, faults: tuple[str, ...], method: str, path: str) -> _Rule | None:
        with self._fault_lock:
            for rule in self._rules:
                if rule.fault in faults and rule.method == method.upper() and rule.fragment in path:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def _fired(self, fault: str, method: str, path: str, **detail: Any) -> None:
        with self._fault_lock:
            self.fault_log.append(FaultEvent(fault, method, path, time.monotonic(), detail))

    def _take_provisioning_failure(self) -> ProvisioningFailure | None:
        with self._fault_lock:
            return self._provisioning_failures.pop(0) if self._provisioning_failures else None

    def _delay_upload(self, method: str, path: str) -> None:
        delay = self.upload_delay_s
        if delay > 0:
            time.sleep(delay)  # a real delay in the request thread, as a slow link would give
            self._fired("slow_upload", method, path, seconds=delay)

    def _token_expiry_problem(self, authorization: str) -> tuple[str, str] | None:
        """(code, message) when strict tokens are on and this bearer token is expired or unreadable."""
        if not self.strict_tokens:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        claims = jwt_claims(token)
        if claims is None or "exp" not in claims:
            return ("InvalidAuthenticationToken", "The access token is invalid.")
        now = time.time()
        if claims["exp"] <= now:
            # ARM's wording, e.g. "The access token expiry UTC time '3/21/2023 12:44:36 PM' is
            # earlier than current UTC time '3/21/2023 12:47:55 PM'."
            return (
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_arm_time(claims['exp'])}' is earlier than current "
                f"UTC time '{_arm_time(now)}'.",
            )
        return None


def throttle_message(method: str, subscription: str, retry_after: int) -> str:
    """ARM's throttling message (SubscriptionRequestsThrottled)."""
    kind = "read" if method.upper() in {"GET", "HEAD"} else "write"
    return (
        f"Number of '{kind}' requests for subscription '{subscription}' actor "
        f"'00000000-0000-0000-0000-00000000b001' exceeded. Please try again after '{retry_after}' seconds."
    )


def throttle_headers(method: str, retry_after: int) -> dict[str, str]:
    kind = "reads" if method.upper() in {"GET", "HEAD"} else "writes"
    return {"Retry-After": str(retry_after), f"x-ms-ratelimit-remaining-subscription-{kind}": "0"}


def expired_token_headers(tenant_id: str, code: str) -> dict[str, str]:
    # ARM's challenge on a refused token (RFC 6750 error="invalid_token").
    description = "The access token has expired." if code == "ExpiredAuthenticationToken" else "The token is invalid."
    return {
        "WWW-Authenticate": f'Bearer authorization_uri="https://login.windows.net/{tenant_id}", '
        f'error="invalid_token", error_description="{description}"'
    }


def jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, json.JSONDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _arm_time(epoch: float) -> str:
    moment = time.gmtime(epoch)
    hour = moment.tm_hour % 12 or 12
    return (
        f"{moment.tm_mon}/{moment.tm_mday}/{moment.tm_year} {hour}:{moment.tm_min:02d}:{moment.tm_sec:02d} "
        f"{'AM' if moment.tm_hour < 12 else 'PM'}"
    )


def drop_connection(connection: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, the client sees a connection reset."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        # An SSLSocket's close() would try a TLS close_notify first; close the raw descriptor.
        raw = socket.socket(fileno=connection.detach()) if hasattr(connection, "detach") else connection
        raw.close()
    except OSError:
        connection.close()


class FaultyRequestHandler(WSGIRequestHandler):
    """Drops the connection of a request that a ``reset_next_request`` rule matches.

    The request line and headers have been read (the server "accepted" it);
    nothing is answered. ``self.server.fake`` is the fake that owns the rules.
    """

    def run_wsgi(self) -> None:
        fake = getattr(self.server, "fake", None)
        path = self.path.split("?", 1)[0]
        if fake is not None and fake._take_rule(("reset",), self.command, path) is not None:
            fake._fired("reset", self.command, path)
            self.close_connection = True
            drop_connection(self.connection)
            return
        super().run_wsgi()

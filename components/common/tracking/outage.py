"""MLflow outages: bounded requests, and how long the server may stay unreachable."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TypeVar

from components.common.errors import SegpipeError
from components.common.uri_credentials import redact, scrub

MAX_RETRY_DELAY_S = 15.0  # between tries while the server is down
PROBE_TIMEOUT_S = 2.0  # a connect to a server that is down, before a real call

log = logging.getLogger(__name__)
T = TypeVar("T")


def connect(uri: str, timeout_s: float) -> None:
    """Open and close a TCP connection to an http(s) tracking server; OSError if it fails."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()


class _Unreachable(Exception):
    """A plain connect to the tracking server failed."""


def _probe(uri: str) -> None:
    try:
        connect(uri, PROBE_TIMEOUT_S)
    except OSError as error:
        raise _Unreachable(f"cannot connect: {error}") from error


def request_timeout_s(window_s: float) -> int:
    """A per-request timeout short enough for several tries within an outage window."""
    return int(max(5, min(30, window_s / 10)))


@contextlib.contextmanager
def bounded_requests(timeout_s: int, max_retries: int = 2) -> Iterator[None]:
    """MLflow HTTP calls that give up after about `max_retries + 1` times `timeout_s` seconds.

    MLflow's defaults (a 120 s timeout, 7 retries with exponential backoff) keep one call
    to a dead server going for about 12 minutes; callers retry on their own terms instead.
    MLflow reads these variables at every request.
    """
    settings = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # sleeps 0 s, then 2 s
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the server could not be reached or failed, rather than refused."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):  # transport errors arrive as INTERNAL_ERROR (500)
        status = error.get_http_status_code()
    elif isinstance(error, requests.HTTPError) and error.response is not None:
        status = error.response.status_code  # artifact uploads
    else:
        return isinstance(error, (requests.ConnectionError, requests.Timeout))
    return status >= 500 or status == 429


class TrackingOutage(SegpipeError, RuntimeError):
    """The tracking server stayed unreachable for longer than the allowed window."""

    reason = "tracking-outage"


class OutageWindow:
    """How long the tracking server has been unreachable, against the `window_s` allowed."""

    def __init__(self, window_s: float, uri: str):
        self.window_s = window_s
        self.uri = uri
        self._down_since: float | None = None
        self._last_error = ""
        self._in_flight: dict[int, float] = {}  # thread -> when its call started

    @property
    def down_for(self) -> float:
        """Seconds the server has not answered: since the start of the first failed call of
        the current outage, or of a call still waiting for longer than a connect may take
        (a hung server accepts connections and never replies). 0 when up."""
        now = time.monotonic()
        starts = [t for t in self._in_flight.values() if now - t > PROBE_TIMEOUT_S]
        if self._down_since is not None:
            starts.append(self._down_since)
        return now - min(starts) if starts else 0.0

    def expired(self) -> bool:
        return self.down_for > self.window_s

    def attempt(self, action: str, call: Callable[[], object]) -> bool:
        """One try of `call`: False (and the outage noted) when the server is unreachable."""
        return self._try(action, call)[0]

    def retry(self, action: str, call: Callable[[], T]) -> T:
        """`call`, tried again while the server is down, until the window has passed."""
        delay = 1.0
        while True:
            done, result = self._try(action, call)
            if done:
                return result
            if self.expired():
                raise TrackingOutage(self.message(action))
            time.sleep(min(delay, max(0.1, self.window_s - self.down_for)))
            delay = min(2 * delay, MAX_RETRY_DELAY_S)

    def _try(self, action: str, call: Callable[[], T]) -> tuple[bool, T | None]:
        """(True, its result), or (False, None) when the server is unreachable.

        While an outage lasts, a quick connect comes first, so a server that is still down
        costs seconds, not MLflow's request timeouts and retries.
        """
        thread, started = threading.get_ident(), time.monotonic()
        self._in_flight[thread] = started
        try:
            if self._down_since is not None:
                _probe(self.uri)
            result = call()
        except Exception as error:
            if not isinstance(error, _Unreachable) and not is_outage(error):
                raise
            self._failed(action, error, started)
            return False, None
        finally:
            self._in_flight.pop(thread, None)
        self._recovered()
        return True, result

    def check(self, consequence: str) -> None:
        """Raise TrackingOutage, saying `consequence`, once the outage outlasts the window."""
        if self.expired():
            raise TrackingOutage(self.message(consequence))

    def message(self, context: str) -> str:
        return (
            f"MLflow tracking server at {redact(self.uri)} unreachable for {self.down_for:.0f} s, "
            f"longer than tracking_outage_s={self.window_s:g} ({context}); "
            f"last error: {self._last_error}"
        )

    def _failed(self, action: str, error: Exception, started: float) -> None:
        self._last_error = scrub(str(error), self.uri)[:300]
        if self._down_since is None:
            self._down_since = started  # it has not answered since the failed call began
            log.warning(
                "MLflow tracking server at %s unreachable while %s; going on and trying again "
                "for up to %g s: %s",
                redact(self.uri),
                action,
                self.window_s,
                self._last_error,
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.info(
                "MLflow tracking server at %s is back after %.0f s", redact(self.uri), self.down_for
            )
            self._down_since = None

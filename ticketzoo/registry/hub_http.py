"""Bounded HTTP for ``huggingface_hub``: a hub that never answers must not hang the CLI.

``huggingface_hub`` waits up to 60 s per attempt and retries 5 times with back-off
(~25 s even when the connection is refused at once), logging a warning per retry. Here:

* every request's connect/read/write timeout is at most ``$TICKETZOO_HUB_TIMEOUT``
  seconds (default 10);
* once a hub origin failed to connect or answer during one ticketzoo operation, further
  requests to it fail at once (:class:`HubUnreachable`, which the library does not retry),
  after the library had its chance to fall back to a cached copy;
* the library's retry warnings stay off the console unless ``TICKETZOO_DEBUG=1``.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager

from ticketzoo.errors import ConfigError

TIMEOUT_ENV = "TICKETZOO_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 10.0
_dead: dict[tuple[str, str, int | None], BaseException] = {}
_installed = False
_active = 0  # inside bounded(): other users of huggingface_hub in this process are left alone


class HubUnreachable(ConnectionError):
    """A hub origin that already failed in this operation (not retried by huggingface_hub)."""


def hub_timeout() -> float:
    """Seconds a hub request may wait to connect or for data: ``$TICKETZOO_HUB_TIMEOUT`` or 10."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds in (0, 3600], got {text[:40]!r}")
    return value


def _debug() -> bool:
    return os.environ.get("TICKETZOO_DEBUG", "") not in ("", "0", "false")


def _client_factory():
    import httpx2
    from huggingface_hub.utils._http import hf_request_event_hook

    class BoundedClient(httpx2.Client):
        def send(self, request, **kwargs):
            if not _active:
                return super().send(request, **kwargs)
            origin = (request.url.scheme, request.url.host, request.url.port)
            if origin in _dead:
                cause = _dead[origin]
                raise HubUnreachable(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
            limit = hub_timeout()
            asked = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {
                k: limit if asked.get(k) is None else min(asked[k], limit) for k in ("connect", "read", "write", "pool")
            }
            try:
                return super().send(request, **kwargs)
            except (httpx2.ConnectError, httpx2.TimeoutException) as e:
                _dead[origin] = e
                raise

    # The library's default client, with the bounded send (see huggingface_hub.utils._http).
    return BoundedClient(event_hooks={"request": [hf_request_event_hook]}, follow_redirects=True, timeout=None)


@contextmanager
def bounded():
    """One hub operation (a pull or a push) with bounded, quiet HTTP."""
    global _installed, _active
    from huggingface_hub.utils import logging as hf_logging
    from huggingface_hub.utils._http import set_client_factory

    hub_timeout()  # a bad setting is an error before any request
    if not _installed:
        set_client_factory(_client_factory)
        _installed = True
    before = hf_logging.get_verbosity()
    if not os.environ.get("HF_HUB_VERBOSITY"):  # the user's own choice stands
        hf_logging.set_verbosity(logging.WARNING if _debug() else logging.ERROR)
    _dead.clear()
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        _dead.clear()
        hf_logging.set_verbosity(before)

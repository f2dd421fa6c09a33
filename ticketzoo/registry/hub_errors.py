"""huggingface_hub exceptions -> ticketzoo errors whose message says what to do.

Messages name the repo, the revision and the endpoint, never the token: ``str()`` of a
huggingface_hub HTTP error is only used for statuses that cannot be about the token.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ticketzoo.errors import HubError, InvalidRefError, TicketNotFoundError, TicketzooError

LOGIN = "set HF_TOKEN or run `hf auth login`"


class NoTicketError(TicketNotFoundError):
    """The repo (at that revision) exists but holds no ticket where one was asked for."""


@dataclass(frozen=True)
class Target:
    """What a hub call was about, for messages."""

    repo_id: str
    name: str | None  # ticket folder in a family repo; None = repo root
    revision: str | None
    endpoint: str
    offline: bool = False

    @property
    def prefix(self) -> str:
        return f"{self.name}/" if self.name else ""

    @property
    def url(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}{'/' + self.name if self.name else ''}{rev}"


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection/timeout exception types of whichever HTTP client huggingface_hub uses."""
    errs: list[type[BaseException]] = [ConnectionError, TimeoutError]
    names = ("ConnectError", "TimeoutException", "RemoteProtocolError", "ProxyError", "ConnectionError", "Timeout")
    for mod in ("httpx2", "httpx", "requests.exceptions"):
        m = sys.modules.get(mod)
        errs += [t for n in names if isinstance(t := getattr(m, n, None), type) and issubclass(t, BaseException)]
    return tuple(errs)


def cached_revisions(t: Target) -> list[str]:
    """Branches/tags/commits of ``t``'s repo whose ticket file is in the local HF cache."""
    from huggingface_hub import constants

    storage = Path(constants.HF_HUB_CACHE) / ("models--" + t.repo_id.replace("/", "--"))
    have = {p.name for p in (storage / "snapshots").glob("*") if (p / t.prefix / "ticket.safetensors").exists()}
    refs = []
    for ref in sorted((storage / "refs").rglob("*")) if (storage / "refs").is_dir() else []:
        try:
            if ref.is_file() and ref.read_text().strip() in have:
                refs.append(ref.relative_to(storage / "refs").as_posix())
        except OSError:
            continue
    return refs or sorted(have)


def unreachable(t: Target, cause: BaseException | None) -> HubError:
    from ticketzoo.registry.hub_http import TIMEOUT_ENV, hub_timeout

    detail = f" ({str(cause)[:200]})" if cause is not None and str(cause) else ""
    cached = cached_revisions(t)
    if cached:
        hint = (f"a cached copy exists (revisions: {', '.join(cached)}): set HF_HUB_OFFLINE=1 to use it, "
                f"e.g. `HF_HUB_OFFLINE=1 ticketzoo pull hf://{t.repo_id}{'/' + t.name if t.name else ''}@{cached[0]}`")
    else:
        hint = (f"check your network connection and HF_ENDPOINT; nothing of {t.repo_id} is in the Hugging Face "
                f"cache for HF_HUB_OFFLINE=1 to use; for a slow hub raise {TIMEOUT_ENV} "
                f"(now {hub_timeout():g} s)")
    return HubError(f"cannot reach the hub at {t.endpoint}{detail}", hint=hint)


def not_cached(t: Target) -> HubError:
    cached = cached_revisions(t)
    also = f"; cached revisions: {', '.join(cached)}" if cached else ""
    return HubError(
        f"{t.url} is not in the Hugging Face cache and HF_HUB_OFFLINE is set",
        hint=f"unset HF_HUB_OFFLINE to download it{also}",
    )


def offline_push() -> HubError:
    return HubError("cannot push while HF_HUB_OFFLINE is set", hint="unset HF_HUB_OFFLINE to push to the hub")


def _status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def _has_token() -> bool:
    try:
        from huggingface_hub import get_token

        return bool(get_token())
    except Exception:  # noqa: BLE001 - a broken OIDC setup etc.: no usable token
        return False


def auth_error(t: Target, status: int, *, writing: bool) -> HubError:
    if status == 403:
        return HubError(
            f"the hub at {t.endpoint} refused access to {t.repo_id} (HTTP 403)",
            hint=f"use a token with write access to {t.repo_id.split('/')[0]}: {LOGIN}",
        )
    if not _has_token():
        what = "pushing" if writing else f"reading {t.repo_id}"
        return HubError(f"{what} needs a Hugging Face token (HTTP 401 from {t.endpoint})", hint=LOGIN)
    return HubError(
        f"the hub at {t.endpoint} rejected your token (HTTP 401): it is invalid or expired",
        hint="set HF_TOKEN to a valid token" + (" with write access" if writing else "") + ", or run `hf auth login`",
    )


@contextmanager
def translated(t: Target, *, writing: bool = False, file: str | None = None):
    """Turn huggingface_hub/network exceptions raised inside the block into ticketzoo errors."""
    from huggingface_hub import errors as hf

    try:
        yield
    except TicketzooError:
        raise
    except hf.RevisionNotFoundError:
        raise TicketNotFoundError(
            f"revision {t.revision!r} not found in hub repo {t.repo_id}",
            ref=t.url,
            hint="give a branch, a tag or a full 40-character commit sha",
        ) from None
    except hf.GatedRepoError:
        hint = f"accept its conditions on the hub, then {LOGIN}"
        raise HubError(f"hub repo {t.repo_id} is gated", hint=hint) from None
    except hf.RepositoryNotFoundError:
        raise TicketNotFoundError(
            f"no hub repo {t.repo_id} at {t.endpoint}",
            ref=t.url,
            hint=f"check the name; if it is private, {LOGIN}",
        ) from None
    except hf.LocalEntryNotFoundError as e:
        if t.offline:
            raise not_cached(t) from None
        raise unreachable(t, e.__cause__) from None
    except hf.EntryNotFoundError:
        raise NoTicketError(
            f"hub repo {t.repo_id} has no ticket (no {file or t.prefix + 'ticket.safetensors'} "
            f"at revision {t.revision or 'main'})",
            ref=t.url,
        ) from None
    except hf.HFValidationError as e:
        raise InvalidRefError(f"{t.repo_id!r} is not a valid hub repo id: {e}", ref=t.url) from None
    except hf.HfHubHTTPError as e:
        status = _status(e)
        if status in (401, 403):
            raise auth_error(t, status, writing=writing) from None
        msg = getattr(e, "server_message", None) or ""
        what = f"the hub at {t.endpoint} answered HTTP {status} for {t.repo_id}"
        raise HubError(what + (f": {msg}" if msg else "")) from None
    except _network_errors() as e:
        if type(e).__name__ == "OfflineModeIsEnabled":  # huggingface_hub read HF_HUB_OFFLINE at import
            raise (offline_push() if writing else not_cached(t)) from None
        raise unreachable(t, e) from None

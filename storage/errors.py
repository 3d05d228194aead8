"""The errors storage/ raises for expected failures: each says what is wrong and how to fix it."""

from __future__ import annotations

import json

from sharedvol import errors as base


class StorageError(base.Error):
    """An expected failure; ``str()`` is one line for the user: what is wrong, then how to fix it."""


class InvalidRequestError(StorageError):
    """A size, name, path or export that cannot work, caught before anything is created."""


class NotFoundError(StorageError):
    """A namespace, StorageClass, node, claim or volume that does not exist."""


class NoNodeError(NotFoundError):
    """No Ready node fits what a step asks for (its node selector, its GPUs)."""


class ConflictError(StorageError):
    """An object exists already and does not match what was asked for."""


class ForbiddenError(StorageError):
    """The API server denied a call (RBAC)."""


class BindError(StorageError):
    """A claim did not become Bound, with the reason found in its events."""


class PrepareError(StorageError):
    """The pod that hands a static volume to the steps' user could not start, failed, or did not end in time."""


class ApiError(StorageError):
    """The API server answered with an error sharedvol cannot handle."""


def from_api(e: Exception, action: str) -> StorageError:
    """The error for an ``ApiException`` raised while doing ``action``; chain it with ``raise ... from e``."""
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", "") or ""
    body = getattr(e, "body", "") or ""
    detail = ""
    if body:
        try:
            detail = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            detail = ""
    text = detail or reason or str(e)
    if status == 403:
        return ForbiddenError(
            f"not allowed to {action} ({text})",
            hint="ask a cluster admin for these rights, or run as a user who has them (kubectl auth can-i ...)",
        )
    if status == 404:
        return NotFoundError(f"cannot {action}: not found ({text})", hint="check the name and the namespace")
    if status == 409:
        return ConflictError(f"cannot {action}: it exists already ({text})", hint="pick another name or release it")
    if status == 422:
        return InvalidRequestError(f"the API server refused to {action}: {text}", hint="fix the value it names")
    if status is None:
        return ApiError(f"cannot reach the API server to {action}: {text}", hint="check --kubeconfig / --context")
    return ApiError(f"cannot {action}: HTTP {status} {text}", hint="see the API server's message")

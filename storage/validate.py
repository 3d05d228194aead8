"""Checks on user input made before anything is sent to the API server; each failure says how to fix it."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from storage import errors

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
FACTORS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity_bytes(size: str) -> int:
    """The number of bytes of a Kubernetes storage quantity (``20Gi``, ``500M``).

    Raises:
        InvalidRequestError: not a quantity, or not positive.
    """
    m = QUANTITY.match(size.strip())
    if not m:
        raise errors.InvalidRequestError(
            f"size {size!r} is not a Kubernetes quantity", hint="write it like 20Gi, 500Mi or 1Ti"
        )
    try:
        value = Decimal(m["num"]) * FACTORS[m["suffix"] or ""]
    except InvalidOperation as e:
        raise errors.InvalidRequestError(f"size {size!r} is not a number", hint="write it like 20Gi") from e
    if value <= 0:
        raise errors.InvalidRequestError(f"size {size!r} is not positive", hint="ask for at least 1Mi, e.g. 20Gi")
    return int(value)


def name(value: str, what: str) -> str:
    """A PVC, PV or StorageClass name: a DNS-1123 subdomain (lowercase, digits, '-', '.', at most 253).

    Raises:
        InvalidRequestError: naming ``what`` and the rule.
    """
    if not value or len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise errors.InvalidRequestError(
            f"{what} {value!r} is not a valid Kubernetes name",
            hint="use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (at most 253)",
        )
    return value


def namespace(value: str) -> str:
    """A namespace name: a DNS-1123 label (at most 63 characters).

    Raises:
        InvalidRequestError: not a DNS-1123 label.
    """
    if not value or len(value) > 63 or not DNS1123_LABEL.match(value):
        raise errors.InvalidRequestError(
            f"namespace {value!r} is not a valid namespace name",
            hint="use lowercase letters, digits and '-', at most 63 characters",
        )
    return value


def host_path(value: str) -> str:
    """A base directory for hostPath volumes: absolute, not ``/``, no ``..``.

    Raises:
        InvalidRequestError: relative, the root, or escaping with ``..``.
    """
    if not value.startswith("/"):
        raise errors.InvalidRequestError(
            f"host path {value!r} is relative", hint="give an absolute directory on the node, e.g. /var/lib/sharedvol"
        )
    parts = [p for p in value.split("/") if p]
    if not parts:
        raise errors.InvalidRequestError(
            "host path '/' would put volumes in the node's root", hint="use a directory, e.g. /var/lib/sharedvol"
        )
    if ".." in parts:
        raise errors.InvalidRequestError(f"host path {value!r} contains '..'", hint="give a plain absolute path")
    return "/" + "/".join(parts)


def nfs_export(value: str) -> tuple[str, str]:
    """``SERVER:/PATH`` -> (server, path).

    Raises:
        InvalidRequestError: no server, or no absolute path.
    """
    server, sep, path = value.partition(":")
    if not sep or not server or not path.startswith("/"):
        raise errors.InvalidRequestError(
            f"NFS export {value!r} is not SERVER:/PATH", hint="e.g. --nfs 10.0.0.5:/exports/kfp"
        )
    return server, path

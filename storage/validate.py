"""Checks on user input made before anything is sent to the API server; each failure says how to fix it.

One place for these rules: sizes (the Kubernetes client's own quantity parser), DNS-1123 names, host paths
(never a system directory) and NFS exports (IPv4, IPv6 in brackets, or a host name).
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import NamedTuple

from storage import errors

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class NameRule(NamedTuple):
    """A DNS-1123 naming rule: the pattern, the longest name, and how to write a name that follows it."""

    pattern: re.Pattern[str]
    longest: int
    hint: str

    def matches(self, value: str) -> bool:
        """Whether ``value`` follows the rule."""
        return bool(value) and len(value) <= self.longest and bool(self.pattern.fullmatch(value))


SUBDOMAIN = NameRule(
    DNS1123_SUBDOMAIN,
    253,
    "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (at most 253)",
)
LABEL = NameRule(DNS1123_LABEL, 63, "use lowercase letters, digits and '-', at most 63 characters")
PLAIN_PATH = re.compile(r"\A[\x21-\x7e]+\Z")  # printable ASCII without spaces: no NUL, control or odd characters
LONGEST_PATH = 512  # characters: room for a volume's directory name (at most 157) under PATH_MAX
MIN_SIZE_BYTES = 2**20  # 1Mi
MIN_SIZE = "1Mi"
MAX_SIZE_BYTES = 2**63 - 1  # the largest quantity Kubernetes holds as an integer (8Ei)
MAX_SIZE = "8Ei"
# Directories a volume must never live in (nor under): the node's system, its runtimes and its secrets.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/etcd",
    "/var/lib/kubelet",
    "/var/log",
    "/var/run",
)
# Top-level directories that may hold a volume base below them, but are not one themselves.
SYSTEM_ROOTS = ("/home", "/mnt", "/opt", "/srv", "/tmp", "/var", "/var/lib")


def quantity_bytes(size: str, *, what: str = "size") -> int:
    """The number of bytes of a Kubernetes storage quantity (``20Gi``, ``500M``, ``1e9``), at least 1Mi.

    Parsed by the Kubernetes client's own ``kubernetes.utils.quantity.parse_quantity``.

    Raises:
        InvalidRequestError: not a quantity, below 1Mi or above 8Ei.
    """
    from kubernetes.utils import quantity

    try:
        if not size.isascii():  # Decimal reads other scripts' digits ("１Gi"); the API server does not
            raise ValueError(size)
        value = quantity.parse_quantity(size.strip())
    except (ValueError, ArithmeticError) as e:
        raise errors.InvalidRequestError(
            f"{what} {size!r} is not a Kubernetes quantity", hint="write it like 20Gi, 500Mi, 1Ti or 1e9"
        ) from e
    if value <= 0:
        raise errors.InvalidRequestError(f"{what} {size!r} is not positive", hint="ask for at least 1Mi, e.g. 20Gi")
    if value < MIN_SIZE_BYTES:
        raise errors.InvalidRequestError(
            f"{what} {size!r} is {_bytes(value)}, below the minimum of {MIN_SIZE}",
            hint="ask for at least 1Mi, e.g. 20Gi",
        )
    if value > MAX_SIZE_BYTES:  # compared as a Decimal: int() of 1e3000000 alone takes a minute
        raise errors.InvalidRequestError(
            f"{what} {_short(size)!r} is more than {MAX_SIZE}, the largest size Kubernetes holds",
            hint="ask for a real size, e.g. 20Gi",
        )
    return int(value)


def _short(size: str) -> str:
    return size if len(size) <= 40 else size[:37] + "..."


def _bytes(value: Decimal) -> str:
    return f"{value.normalize():f} bytes"


def name(value: str, what: str) -> str:
    """A PVC, PV or StorageClass name: a DNS-1123 subdomain (lowercase, digits, '-', '.', at most 253).

    Raises:
        InvalidRequestError: naming ``what`` and the rule.
    """
    return _follows(SUBDOMAIN, value, f"{what} {value!r} is not a valid Kubernetes name")


def is_subdomain(value: str) -> bool:
    """Whether ``value`` is a DNS-1123 subdomain (the rule for most object names)."""
    return SUBDOMAIN.matches(value)


def is_label(value: str) -> bool:
    """Whether ``value`` is a DNS-1123 label (the rule for namespace names)."""
    return LABEL.matches(value)


def namespace(value: str) -> str:
    """A namespace name: a DNS-1123 label (at most 63 characters).

    Raises:
        InvalidRequestError: not a DNS-1123 label.
    """
    return _follows(LABEL, value, f"namespace {value!r} is not a valid namespace name")


def _follows(rule: NameRule, value: str, message: str) -> str:
    if not rule.matches(value):
        raise errors.InvalidRequestError(message, hint=rule.hint)
    return value


def host_path(value: str) -> str:
    """A base directory for hostPath volumes: absolute, no ``..``, not ``/`` and not a system directory.

    Raises:
        InvalidRequestError: relative, the root, escaping with ``..``, or a system directory (``/etc``...).
    """
    if not PLAIN_PATH.match(value) or len(value) > LONGEST_PATH:
        raise errors.InvalidRequestError(
            f"host path {value[:80]!r} is not a plain path (printable ASCII, no spaces, at most {LONGEST_PATH} "
            "characters)",
            hint="give an absolute directory on the node, e.g. /var/lib/sharedvol",
        )
    if not value.startswith("/"):
        raise errors.InvalidRequestError(
            f"host path {value!r} is relative", hint="give an absolute directory on the node, e.g. /var/lib/sharedvol"
        )
    parts = [p for p in value.split("/") if p]
    if not parts:
        raise errors.InvalidRequestError(
            "host path '/' would put volumes in the node's root", hint="use a directory, e.g. /var/lib/sharedvol"
        )
    if ".." in parts or "." in parts:
        raise errors.InvalidRequestError(f"host path {value!r} contains '.' or '..'", hint="give a plain absolute path")
    clean = "/" + "/".join(parts)
    system = next((t for t in SYSTEM_TREES if clean == t or clean.startswith(t + "/")), None)
    if system is not None or clean in SYSTEM_ROOTS:
        raise errors.InvalidRequestError(
            f"host path {clean!r} is {'in ' + system if system and system != clean else 'a system directory'}",
            hint="use a directory of its own, e.g. /var/lib/sharedvol or /data/sharedvol",
        )
    return clean


def nfs_export(value: str) -> tuple[str, str]:
    """``SERVER:/PATH`` -> (server, path). An IPv6 server is written in brackets: ``[fd00::5]:/exports``.

    Raises:
        InvalidRequestError: no server, no absolute path, or an IPv6 address without brackets.
    """
    bad = errors.InvalidRequestError(
        f"NFS export {value!r} is not SERVER:/PATH",
        hint="e.g. --nfs 10.0.0.5:/exports/kfp, --nfs nfs.example.com:/kfp or --nfs [fd00::5]:/exports/kfp",
    )
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise bad
        try:
            server = str(ipaddress.IPv6Address(host))
        except ValueError as e:
            raise errors.InvalidRequestError(
                f"NFS server [{host}] is not an IPv6 address", hint="e.g. --nfs [fd00::5]:/exports/kfp"
            ) from e
        path = rest[1:]
    else:
        server, sep, path = value.partition(":")
        if ":" in path and not path.startswith("/"):
            raise errors.InvalidRequestError(
                f"NFS export {value!r} looks like an IPv6 address without brackets",
                hint="write the server in brackets: --nfs [fd00::5]:/exports/kfp",
            )
        if not sep or not server:
            raise bad
        _server_name(server)
    if not path.startswith("/") or "\x00" in path:
        raise bad
    return server, path


def _server_name(server: str) -> None:
    try:
        ipaddress.IPv4Address(server)
        return
    except ValueError:
        pass
    if not is_subdomain(server.lower()):
        raise errors.InvalidRequestError(
            f"NFS server {server!r} is not an IP address or a host name", hint="e.g. --nfs 10.0.0.5:/exports/kfp"
        )

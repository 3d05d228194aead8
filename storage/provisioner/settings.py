"""The provisioner's settings, read once at start-up from flags and environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from storage import errors, validate

PROVISIONER = "sharedvol.io/hostpath"
CRASH_POINTS = ("", "directory", "event", "volume", "touch")
DEFAULT_BASE = "/var/lib/sharedvol"
ON_DELETE = ("delete", "archive", "retain")
MIN_RECHECK_S, MAX_RECHECK_S = 0.1, 3600  # a re-check at most 10 times a second, at least once an hour
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# a StorageClass's provisioner field: a DNS subdomain, then optionally /NAME (what StorageClasses may name)
_PROVISIONER_NAME = re.compile(
    r"\A(?=.{1,253}\Z)[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z"
)


@dataclass(frozen=True)
class Settings:
    """How ``sharedvol serve`` runs.

    Attributes:
        provisioner: the provisioner name it serves (``StorageClass.provisioner``). Default sharedvol.io/hostpath.
        kubeconfig: kubeconfig file; empty: in-cluster service account (or ``$KUBECONFIG``).
        base_path_root: where the node's filesystem is mounted in this process; a class's ``basePath`` ``/b`` is
            ``<root>/b`` here. Default "" (the service sees the node's paths as they are: hostPath-mounted).
        health_port: port of the liveness endpoint ``/healthz``. Default 8080; 0 disables it.
        log_json: structured (JSON) logs. Default on.
        recheck_s: seconds between re-checks of the Pending claims of its provisioner (a failed claim is
            tried again after 1, 2, 4... re-check periods, at most ``max_backoff_s``). Default 10.
        max_backoff_s: the longest wait before trying a failed claim again, seconds. Default 300.
        crash_at: fault injection for tests (``SHAREDVOL_CRASH_AT``): exit at once, as if killed, after this
            step of provisioning: ``directory``, ``event``, ``volume`` or ``touch``. Default "" (never).
        namespace: where its heartbeat Lease lives (``SHAREDVOL_NAMESPACE``). Default: its pod's namespace when it
            runs in a pod (the service account's), else ``default`` (a ``sharedvol serve`` started by hand).
        node_name: the node this instance serves (``SHAREDVOL_NODE_NAME``; k8s/fallback's DaemonSet sets it from
            the pod's ``spec.nodeName``): it provisions and reclaims only the volumes of that node, whose
            directories it can reach. Default "" (one instance serves every node: a service whose base path is
            shared by all nodes, or a one-node cluster).
    """

    provisioner: str = PROVISIONER
    kubeconfig: str = ""
    base_path_root: str = ""
    health_port: int = 8080
    log_json: bool = True
    recheck_s: float = 10.0
    max_backoff_s: float = 300.0
    crash_at: str = ""
    namespace: str = "default"
    node_name: str = ""

    def local_path(self, node_path: str) -> str:
        """Where the node's ``node_path`` is in this process's filesystem."""
        return os.path.join(self.base_path_root, node_path.lstrip("/")) if self.base_path_root else node_path

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``SHAREDVOL_*`` environment variables, then ``overrides`` (flags).

        Raises:
            InvalidRequestError: a malformed value, naming the variable.
        """
        env = os.environ
        values: dict[str, object] = {
            "health_port": _env_number("SHAREDVOL_HEALTH_PORT", int, "8080", "a port number"),
            "recheck_s": _env_number("SHAREDVOL_RECHECK_SECONDS", float, "10", "a number"),
            "crash_at": env.get("SHAREDVOL_CRASH_AT", ""),
            "provisioner": env.get("SHAREDVOL_PROVISIONER", PROVISIONER),
            "kubeconfig": env.get("SHAREDVOL_KUBECONFIG", ""),
            "base_path_root": env.get("SHAREDVOL_BASE_PATH_ROOT", ""),
            "log_json": env.get("SHAREDVOL_LOG_JSON", "1") != "0",
            "namespace": env.get("SHAREDVOL_NAMESPACE") or _own_namespace(),
            "node_name": env.get("SHAREDVOL_NODE_NAME", ""),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        if not 0 <= settings.health_port <= 65535:
            raise errors.InvalidRequestError(f"health port {settings.health_port} is out of range", hint="use 1-65535")
        if settings.crash_at not in CRASH_POINTS:
            raise errors.InvalidRequestError(
                f"SHAREDVOL_CRASH_AT={settings.crash_at!r} is not a step", hint=f"use one of {CRASH_POINTS[1:]}"
            )
        if settings.node_name and not validate.SUBDOMAIN.matches(settings.node_name):
            raise errors.InvalidRequestError(
                f"node name {settings.node_name[:80]!r} (SHAREDVOL_NODE_NAME or --node-name) is not a node name",
                hint="pass the pod's spec.nodeName (the downward API), or leave it unset to serve every node",
            )
        if not _PROVISIONER_NAME.match(settings.provisioner):
            raise errors.InvalidRequestError(
                f"provisioner {settings.provisioner[:80]!r} (SHAREDVOL_PROVISIONER or --provisioner) is not a "
                "provisioner name",
                hint=f"a domain-prefixed name of at most 253 characters, like {PROVISIONER}",
            )
        if not MIN_RECHECK_S <= settings.recheck_s <= MAX_RECHECK_S:  # inf and nan too
            raise errors.InvalidRequestError(
                f"re-check period {settings.recheck_s:g} s is not between {MIN_RECHECK_S:g} s and "
                f"{MAX_RECHECK_S} s (an hour)",
                hint="e.g. --recheck-seconds 10",
            )
        return settings


def _own_namespace() -> str:
    """The pod's namespace (its service account's), or ``default`` outside a pod."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read(253).strip() or "default"
    except OSError:
        return "default"


def _env_number(name: str, kind: type[int] | type[float], default: str, what: str) -> int | float:
    """The environment variable ``name`` (``default`` when unset) as ``kind``.

    Raises:
        InvalidRequestError: not ``kind``, naming the variable and its value.
    """
    text = os.environ.get(name, default)
    try:
        return kind(text)
    except ValueError as e:
        raise errors.InvalidRequestError(f"{name}={text!r} is not {what}", hint=f"e.g. {default}") from e

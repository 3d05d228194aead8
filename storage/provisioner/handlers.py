"""The kopf wiring of ``sharedvol serve``: which events reach which worker, and kopf's settings and login.

The work is elsewhere: :mod:`storage.provisioner.provision` (claims) and :mod:`storage.provisioner.reclaim`
(volumes). Handlers are ``on.event`` handlers: kopf adds no finalizers and no annotations to users' objects,
keeps no progress, and a handler never raises (each worker turns any failure into an Event and a log line,
so no object can stop the service). The settings come through kopf's ``memo`` (``memo.settings``).
"""

from __future__ import annotations

from typing import Any

import kopf

from storage import kube
from storage.provisioner import provision, reclaim


@kopf.on.event("", "v1", "persistentvolumeclaims")
def on_claim(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A claim changed: provision it when it is Pending and asks for our provisioner."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    wanted = provision.wants(
        dict(meta.get("annotations") or {}),
        status.get("phase"),
        spec.get("volumeName"),
        bool(meta.get("deletionTimestamp")),
        memo.settings.provisioner,
    )
    uid = str(meta.get("uid", ""))
    # a failed claim waits out its backoff whatever happens to it: its owner's updates (an annotation, again
    # and again) must not make the service try, and post an Event, at their pace
    if type == "DELETED" or not wanted or not memo.recheck.due(uid):
        return
    if provision.try_provision(memo.core, meta["namespace"], meta["name"], memo.settings):
        memo.recheck.failures.pop(uid, None)
    else:
        memo.recheck.failed(uid)


@kopf.on.event("", "v1", "persistentvolumes")
def on_volume(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A PV changed: reclaim it when it is ours, Released, and its policy is Delete."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    wanted = reclaim.wants(
        dict(meta.get("annotations") or {}),
        status.get("phase"),
        spec.get("persistentVolumeReclaimPolicy"),
        memo.settings.provisioner,
    )
    if type != "DELETED" and wanted:
        reclaim.try_reclaim(memo.core, meta["name"], memo.settings)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf settings: no peering, no CRD scanning, no posting, nothing stored on users' objects."""
    settings.peering.standalone = True
    settings.scanning.disabled = True  # core resources only: no watching of CRDs or namespaces (no RBAC for them)
    settings.posting.enabled = False
    # on.event handlers keep no progress and no diff base: store neither on users' objects
    settings.persistence.progress_storage = kopf.MultiProgressStorage([])
    settings.persistence.diffbase_storage = kopf.MultiDiffBaseStorage([])
    # client-side deadlines too: a server that accepts and never answers cannot stall the service
    # (kopf's networking.request_timeout, 5 min, already bounds its other requests)
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 60 + kube.WATCH_SLACK_S
    settings.watching.connect_timeout = kube.answer_timeout_s()
    settings.networking.connect_timeout = kube.answer_timeout_s()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Log in with the same configuration as the rest of sharedvol (kubeconfig or in-cluster)."""
    c = kube.load_api_client(memo.settings.kubeconfig or None).configuration
    scheme, _sep, token = (c.api_key.get("authorization") or "").partition(" ")
    if c.api_key_prefix.get("authorization"):  # in-cluster: the prefix is kept apart from the token
        scheme, token = c.api_key_prefix["authorization"], c.api_key["authorization"]
    return kopf.ConnectionInfo(
        server=c.host,
        ca_path=c.ssl_ca_cert,
        insecure=not c.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=c.cert_file,
        private_key_path=c.key_file,
    )

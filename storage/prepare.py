"""Hand a static hostPath volume's root to the steps' user, with one short pod.

The kubelet creates the directory of a ``DirectoryOrCreate`` hostPath PV owned by root, mode 0755, so the
pipeline's steps (uid 1000, docker/Dockerfile ``USER 1000:1000``) cannot write to it. Once the claim is
Bound, one pod mounts the claim and runs ``chown UID:GID`` and ``chmod 0775`` on its root: as root, with
every capability dropped but CHOWN and FOWNER (chmod of a directory root no longer owns), ``restartPolicy:
Never``, ``activeDeadlineSeconds`` (it ends even when the caller is killed), no service account token. The
PV's node affinity places it on the volume's node. It is watched with a deadline, fails fast when its image
cannot be pulled, and is deleted at the end, success or not. The PV then carries the annotation
``sharedvol.io/prepared: UID:GID MODE``, so a rerun over a ready volume runs no pod.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sharedvol import version
from storage import errors, kube, podwait, prepare_pod, specs

if TYPE_CHECKING:  # kubernetes is imported lazily: `sharedvol --help` stays fast
    from kubernetes.client import ApiClient, CoreV1Api

log = logging.getLogger(__name__)

DEFAULT_IMAGE = version.STEP_IMAGE  # the step image (as pipelines.options.DEFAULT_IMAGE)
DEFAULT_OWNER = "1000:1000"  # docker/Dockerfile: USER 1000:1000
MOUNT = "/mnt/shared"
PREPARED_ANNOTATION = prepare_pod.PREPARED_ANNOTATION
CLAIM_ANNOTATION = prepare_pod.CLAIM_ANNOTATION
COMPONENT = prepare_pod.COMPONENT
pod_name = prepare_pod.pod_name
SCRIPT = 'chown "$1" "$3" && chmod "$2" "$3"'
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Settings:
    """How the volume is handed over.

    Attributes:
        image: ``spec.containers[0].image`` of the pod (needs ``sh``, ``chown`` and ``chmod``); pulled only
            when the node lacks it (``imagePullPolicy: IfNotPresent``). Default the step
            image ``sharedvol:<version>`` (sharedvol/version.py).
        owner: ``UID:GID`` the volume's root is given to (numbers). Default ``1000:1000``, the steps' user.
        mode: the root's permission bits. Default 0o775.
        timeout_s: seconds to wait for the pod to end (also its ``activeDeadlineSeconds``). Default 120.
    """

    image: str = DEFAULT_IMAGE
    owner: str = DEFAULT_OWNER
    mode: int = 0o775
    timeout_s: float = 120.0

    def validate(self) -> tuple[int, int]:
        """The owner's (uid, gid), after checking every field.

        Raises:
            InvalidRequestError: naming the flag and the fix.
        """
        if not self.image or not self.image.isprintable() or any(ch.isspace() for ch in self.image):
            raise errors.InvalidRequestError(
                f"--prepare-image {self.image!r} is not an image reference",
                hint=f"name an image the node has, e.g. --prepare-image {DEFAULT_IMAGE}",
            )
        m = re.fullmatch(r"(\d{1,10}):(\d{1,10})", self.owner)
        if m is None or max(int(m[1]), int(m[2])) > MAX_ID:
            raise errors.InvalidRequestError(
                f"--owner {self.owner!r} is not UID:GID in numbers",
                hint=f"e.g. --owner {DEFAULT_OWNER} (the steps' user, docker/Dockerfile USER)",
            )
        if not 0 <= self.mode <= 0o7777:
            raise errors.InvalidRequestError(f"mode {self.mode:o} is not a permission mode", hint="e.g. 775")
        if not self.timeout_s > 0:
            raise errors.InvalidRequestError(f"timeout {self.timeout_s:g} s is not positive", hint="e.g. 120")
        return int(m[1]), int(m[2])

    @property
    def stamp(self) -> str:
        """The ``sharedvol.io/prepared`` value once done: ``UID:GID MODE`` (``1000:1000 0775``), numbers normalised."""
        return f"{self.owner_ids} {self.mode:04o}"

    @property
    def owner_ids(self) -> str:
        """``UID:GID`` as the pod's ``chown`` gets it (leading zeros dropped)."""
        uid, gid = self.validate()
        return f"{uid}:{gid}"


@dataclass
class Prepared:
    """What :func:`ensure` did.

    Attributes:
        pod: the pod's name.
        stamp: ``UID:GID MODE`` the volume's root has now.
        ran: False when the PV said it was done already (no pod ran).
        seconds: time from the pod's creation to its end.
    """

    pod: str
    stamp: str
    ran: bool
    seconds: float = 0.0

    def describe(self) -> str:
        """One line for people."""
        owner, mode = self.stamp.split()
        if not self.ran:
            return f"volume root: owned by {owner}, mode {mode} (done before; no pod ran)"
        return f"volume root: handed to {owner}, mode {mode}, by pod {self.pod} in {self.seconds:.1f} s"


def pod(namespace: str, claim: str, s: Settings) -> dict[str, Any]:
    """The pod that hands claim ``namespace/claim``'s root to ``s.owner`` (pure; see the module docstring)."""
    s.validate()
    container = {
        "name": "prepare",
        "image": s.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", SCRIPT, "sharedvol-prepare", s.owner_ids, f"{s.mode:04o}", MOUNT],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "volume", "mountPath": MOUNT}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(claim),
            "namespace": namespace,
            "labels": {specs.MANAGED_BY: specs.MANAGER, COMPONENT: "prepare"},
            "annotations": {CLAIM_ANNOTATION: claim, PREPARED_ANNOTATION: s.stamp},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": max(1, math.ceil(s.timeout_s)),
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False},
            "containers": [container],
            "volumes": [{"name": "volume", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def ensure(api: ApiClient, namespace: str, claim: str, volume: str, s: Settings) -> Prepared:
    """Hand the root of Bound claim ``namespace/claim`` (on PV ``volume``) to ``s.owner``, unless done before.

    Raises:
        InvalidRequestError: bad settings (before any request).
        PrepareError: the pod could not pull its image, failed, or did not end in ``s.timeout_s`` seconds.
        ForbiddenError: RBAC (or Pod Security) refused the pod; the message names the rights needed.
        ConflictError: another pod of that name, for another owner, is running.
        ApiError: the API server did not answer.
    """
    s.validate()
    from kubernetes import client

    core = client.CoreV1Api(api)
    with kube.reachable(f"prepare the volume of claim {namespace}/{claim}", api):
        if _stamp(core, volume) == s.stamp:
            log.info("PersistentVolume %s was handed to %s before; no pod", volume, s.stamp)
            return Prepared(pod_name(claim), s.stamp, ran=False)
        body = pod(namespace, claim, s)
        for _attempt in range(3):
            started = time.monotonic()
            made = prepare_pod.create_or_adopt(core, body)
            if made is None:
                continue
            try:
                ended = podwait.wait_ended(core, namespace, made.metadata.name, made.metadata.uid, timeout=s.timeout_s)
            except BaseException:
                with contextlib.suppress(errors.StorageError):
                    prepare_pod.delete(core, made)
                raise
            prepare_pod.delete(core, made)
            if ended.outcome == "Deleted" and _stamp(core, volume) != s.stamp:
                continue  # a pod of another call, which failed or was deleted: try with our own
            if ended.outcome in ("Succeeded", "Deleted"):
                _mark(core, volume, s.stamp)
                return Prepared(made.metadata.name, s.stamp, ran=True, seconds=round(time.monotonic() - started, 3))
            raise _failure(ended, namespace, made.metadata.name, volume, s)
    raise errors.ConflictError(
        f"pod {namespace}/{body['metadata']['name']} was replaced by other calls three times",
        hint="another sharedvol call prepares this volume: wait for it, then run this again",
    )


def _stamp(core: CoreV1Api, volume: str) -> str:
    pv = kube.call(core.read_persistent_volume, f"read PersistentVolume {volume}", volume)
    return str((pv.metadata.annotations or {}).get(PREPARED_ANNOTATION, ""))


def _mark(core: CoreV1Api, volume: str, stamp: str) -> None:
    """Write the stamp on the PV; a refusal only costs a pod at the next run, so it is logged, not raised."""
    body = {"metadata": {"annotations": {PREPARED_ANNOTATION: stamp}}}
    try:
        kube.call(core.patch_persistent_volume, f"annotate PersistentVolume {volume}", volume, body)
    except errors.StorageError as e:
        log.warning("%s (the next run hands the volume over again)", e)


def _failure(ended: podwait.Ended, ns: str, name: str, volume: str, s: Settings) -> errors.PrepareError:
    where = f"on node {ended.node}" if ended.node else "(not scheduled)"
    yourself = f"or make the volume's directory owned by {s.owner} yourself and pass --no-prepare"
    text = f"{ended.reason} {ended.detail}".lower()
    if ended.outcome == "Stuck" and ("pull" in text or ended.reason == "InvalidImageName"):
        return errors.PrepareError(
            f"pod {ns}/{name} {where} cannot start: image {s.image} cannot be pulled ({ended.reason}: {ended.detail})",
            hint=f"load {s.image} into that node's runtime (the step image: docker/Dockerfile; docs/image.md)"
            f", or pass --prepare-image with an image the node has (it needs sh, chown, chmod), {yourself}",
        )
    if ended.outcome == "Stuck":
        return errors.PrepareError(
            f"pod {ns}/{name} {where} cannot start ({ended.reason}: {ended.detail})",
            hint=f"pass --prepare-image with an image that has /bin/sh, chown and chmod, {yourself}",
        )
    if ended.outcome == "Failed" and ended.reason != "DeadlineExceeded":
        return errors.PrepareError(
            f"pod {ns}/{name} {where} failed to hand PersistentVolume {volume} to {s.owner} "
            f"({ended.reason or 'Failed'}: {ended.detail or 'no message'})",
            hint=f"the node's filesystem refused chown/chmod on that directory: fix it there, {yourself}",
        )
    return errors.PrepareError(
        f"pod {ns}/{name} {where} did not end in {s.timeout_s:.0f} s (phase {ended.phase or 'unknown'}: "
        f"{ended.detail or 'no events'})",
        hint=f"check that the volume's node can run pods (taints, image {s.image}), then run this again, {yourself}",
    )

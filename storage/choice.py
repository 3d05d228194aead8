"""One grammar for where a claim's storage comes from: the value of ``--storage`` in every command.

::

    auto               detect: StorageClass sharedvol-nfs unless found broken, another RWX class,
                       sharedvol-hostpath when its provisioner runs; where a volume can be made now (run,
                       provision): else `static`
    nfs                StorageClass sharedvol-nfs (kubectl apply -k k8s/nfs)
    fallback           StorageClass sharedvol-hostpath, served by `sharedvol serve` (kubectl apply -k k8s/fallback)
    CLASS, class:CLASS that StorageClass (write class:CLASS for a class named like a keyword here)
    pvc:NAME           an existing claim: mounted, never created or deleted
    static             a hostPath PersistentVolume made now on one node, pre-bound to the claim
    static:PV[:CLASS]  an existing PersistentVolume the claim is pre-bound to (the claim's class CLASS, default "")
    nfs:SERVER:/PATH   a PersistentVolume made now on that NFS export, pre-bound to the claim

Pure: parsing and checking only (names by :mod:`storage.validate`); what a command does with a choice is
the command's business (:meth:`Choice.plan_fields` gives :class:`storage.plan.Request` its fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from storage import classes, errors, validate

GRAMMAR = "auto, nfs, fallback, CLASS, class:CLASS, pvc:NAME, static, static:PV[:CLASS] or nfs:SERVER:/PATH"
KEYWORDS = ("auto", "nfs", "fallback", "static", "class", "pvc")

Kind = Literal["auto", "class", "claim", "pv", "hostpath", "export"]
MAKES_VOLUME: tuple[Kind, ...] = ("hostpath", "export")


@dataclass(frozen=True)
class Choice:
    """A parsed ``--storage`` value.

    Attributes:
        kind: ``auto`` (detect), ``class`` (a StorageClass: ``PersistentVolumeClaim.spec.storageClassName``),
            ``claim`` (an existing claim), ``pv`` (an existing PersistentVolume:
            ``PersistentVolumeClaim.spec.volumeName``), ``hostpath`` (a hostPath PV made now) or ``export``
            (an NFS PV made now).
        name: the class, claim or PV name, or ``SERVER:/PATH`` for ``export``; empty for ``auto``/``hostpath``.
        storage_class: for ``pv``, the claim's ``storageClassName`` (must match the PV's). Default ``""``.
    """

    kind: Kind
    name: str = ""
    storage_class: str = ""

    def __str__(self) -> str:
        """The canonical spelling, e.g. ``pvc:team-data``."""
        if self.kind == "class":
            return {classes.NFS_CLASS: "nfs", classes.FALLBACK_CLASS: "fallback"}.get(
                self.name, f"class:{self.name}" if self.name in KEYWORDS else self.name
            )
        if self.kind == "pv":
            return f"static:{self.name}" + (f":{self.storage_class}" if self.storage_class else "")
        return {"auto": "auto", "hostpath": "static", "claim": f"pvc:{self.name}", "export": f"nfs:{self.name}"}[
            self.kind
        ]

    @property
    def makes_volume(self) -> bool:
        """Whether the choice makes a PersistentVolume now (a command without cluster access cannot)."""
        return self.kind in MAKES_VOLUME

    def plan_fields(self) -> dict[str, Any]:
        """The :class:`storage.plan.Request` fields for this choice (``auto``: none; ``pv`` is not a plan).

        Raises:
            InvalidRequestError: ``static:PV`` (a plan makes volumes; pre-binding to an existing PV is the
                pipeline's create-volume).
        """
        if self.kind == "pv":
            raise errors.InvalidRequestError(
                f"--storage {self} names a volume that exists; nothing to provision",
                hint="use --storage static to make one, or mount its claim with --storage pvc:NAME",
            )
        fields: dict[str, dict[str, Any]] = {
            "auto": {},
            "class": {"storage_class": self.name},
            "claim": {"existing": self.name},
            "hostpath": {"static": True},
            "export": {"nfs": self.name},
        }
        return fields[self.kind]


AUTO = Choice("auto")


def parse(text: str, *, flag: str = "--storage") -> Choice:
    """The :class:`Choice` a ``--storage`` value stands for; names are checked (DNS-1123, ``SERVER:/PATH``).

    Raises:
        InvalidRequestError: one line naming ``flag``, the value and the grammar.
    """
    head, sep, rest = text.partition(":")
    if not sep:
        if text in ("auto", "static"):
            return Choice("auto") if text == "auto" else Choice("hostpath")
        if text in ("nfs", "fallback"):
            return Choice("class", classes.NFS_CLASS if text == "nfs" else classes.FALLBACK_CLASS)
        if text in KEYWORDS or not _is_name(text):
            raise _not_understood(text, flag)
        return Choice("class", text)
    if head == "class" and _is_name(rest):
        return Choice("class", rest)
    if head == "pvc" and _is_name(rest):
        return Choice("claim", rest)
    if head == "static":
        pv, _, cls = rest.partition(":")
        if _is_name(pv) and (not cls or _is_name(cls)):
            return Choice("pv", pv, cls)
    if head == "nfs" and rest:
        try:
            validate.nfs_export(rest)
        except errors.InvalidRequestError as e:
            raise _not_understood(text, flag, f" ({e.message})") from e
        return Choice("export", rest)
    raise _not_understood(text, flag)


def named(kind: Kind, value: str, *, flag: str, storage_class: str = "") -> Choice:
    """A class, claim or PV given on its own (an old ``--storage-class``-style flag), checked with ``flag`` named.

    Raises:
        InvalidRequestError: empty, or not a DNS-1123 name.
    """
    if not value:
        raise errors.InvalidRequestError(f"{flag} is empty", hint=f"use --storage {GRAMMAR}")
    if storage_class:
        validate.name(storage_class, "--storage-class")
    return Choice(kind, validate.name(value, flag), storage_class)


def _is_name(value: str) -> bool:
    try:
        validate.name(value, "name")
    except errors.InvalidRequestError:
        return False
    return True


def _not_understood(text: str, flag: str, why: str = "") -> errors.InvalidRequestError:
    return errors.InvalidRequestError(f"{flag} {text!r} is not a storage choice{why}", hint=f"use {GRAMMAR}")

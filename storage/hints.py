"""What to install, and how, in one table: every message that says "install ..." takes its command from here."""

from __future__ import annotations

INSTALL = {
    "nfs": "kubectl apply -k k8s/nfs",
    "fallback": "kubectl apply -k k8s/fallback",
}
# Where a message names a class that is missing: the command that installs it.
BY_CLASS = {"sharedvol-nfs": INSTALL["nfs"], "sharedvol-hostpath": INSTALL["fallback"]}
NO_RWX = (
    f"install RWX storage ({INSTALL['nfs']}) or the fallback provisioner ({INSTALL['fallback']}), "
    "or let an admin run `sharedvol provision NAME -n NAMESPACE --static` and pass --storage pvc:NAME"
)
NO_RWX_COMPILE = (
    f"{INSTALL['nfs']} (or k8s/fallback); or make a volume with `sharedvol provision NAME --static` and pass "
    "--storage pvc:NAME; or use `sharedvol run`, which makes one"
)

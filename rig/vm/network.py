"""The host's side of the VM node's network: a bridge with the host's address, the VM's tap device on it, a route to
the VM's pod range, and FORWARD rules that admit the traffic between the bridge and the host's pods (dockerd sets the
FORWARD policy to DROP). Made by ``up`` and removed by ``down``, which also clears what a killed run left.
"""

from __future__ import annotations

import subprocess

from rig.vm.guest import VM_POD_SUBNET

BRIDGE = "sharedvol-br0"
TAP = "sharedvol-tap0"
HOST_ADDRESS = "10.77.0.1"
VM_ADDRESS = "10.77.0.2"
PREFIX = 24
COMMENT = "sharedvol-vm"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {out.stderr.strip()}")
    return out


def _forward_rules() -> list[list[str]]:
    return [
        ["FORWARD", "-i", BRIDGE, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"],
        ["FORWARD", "-o", BRIDGE, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"],
    ]


def up() -> None:
    """Create the bridge, the tap, the route and the FORWARD rules (after removing any left over)."""
    down()
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    _ip("tuntap", "add", "dev", TAP, "mode", "tap")
    _ip("link", "set", TAP, "master", BRIDGE)
    _ip("link", "set", TAP, "up")
    _ip("route", "replace", VM_POD_SUBNET, "via", VM_ADDRESS, "dev", BRIDGE)
    subprocess.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=False)
    for rule in _forward_rules():
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)


def down() -> None:
    """Remove the FORWARD rules, the route, the tap and the bridge; what is not there is skipped."""
    for rule in _forward_rules():
        while subprocess.run(["iptables", "-D", *rule], capture_output=True, check=False).returncode == 0:
            pass
    _ip("route", "del", VM_POD_SUBNET, check=False)
    _ip("link", "del", TAP, check=False)
    _ip("link", "del", BRIDGE, check=False)


def exists() -> bool:
    """True when the bridge is there (a VM node runs, or one was killed without ``down``)."""
    return _ip("link", "show", BRIDGE, check=False).returncode == 0

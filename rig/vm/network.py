"""The host's side of the VM nodes' network: a bridge with the host's address, each VM's tap device on it and a
route to its pod range, and FORWARD rules that admit the traffic between the bridge and the host's pods (dockerd
sets the FORWARD policy to DROP). The host routes between the VMs' pod ranges too (in and out of the bridge). Made
by ``up`` (the first VM) and ``add_vm`` (each further one); ``down`` removes all, also what a killed run left.
"""

from __future__ import annotations

import subprocess

from rig.vm.guest import MAX_VMS, pod_subnet

BRIDGE = "sharedvol-br0"
HOST_ADDRESS = "10.77.0.1"
PREFIX = 24


def tap(index: int) -> str:
    """VM ``index``'s tap device: sharedvol-tap0 for the first."""
    return f"sharedvol-tap{index - 1}"


def vm_address(index: int) -> str:
    """VM ``index``'s address on the bridge: 10.77.0.2 for the first."""
    return f"10.77.0.{index + 1}"


def mac(index: int) -> str:
    """VM ``index``'s network card's address."""
    return f"52:54:00:77:00:{index + 1:02x}"


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
    """Create the bridge, the first VM's tap and route, and the FORWARD rules (after removing any left over)."""
    down()
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    subprocess.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=False)
    for rule in _forward_rules():
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    add_vm(1)


def add_vm(index: int) -> None:
    """VM ``index``'s tap on the bridge and the route to its pod range (the bridge must exist)."""
    remove_vm(index)
    _ip("tuntap", "add", "dev", tap(index), "mode", "tap")
    _ip("link", "set", tap(index), "master", BRIDGE)
    _ip("link", "set", tap(index), "up")
    _ip("route", "replace", pod_subnet(index), "via", vm_address(index), "dev", BRIDGE)


def remove_vm(index: int) -> None:
    """VM ``index``'s route and tap; what is not there is skipped."""
    _ip("route", "del", pod_subnet(index), check=False)
    _ip("link", "del", tap(index), check=False)


def down() -> None:
    """Remove the FORWARD rules, every VM's route and tap, and the bridge; what is not there is skipped."""
    for rule in _forward_rules():
        while subprocess.run(["iptables", "-D", *rule], capture_output=True, check=False).returncode == 0:
            pass
    for index in range(1, MAX_VMS + 1):
        remove_vm(index)
    _ip("link", "del", BRIDGE, check=False)


def exists() -> bool:
    """True when the bridge is there (a VM node runs, or one was killed without ``down``)."""
    return _ip("link", "show", BRIDGE, check=False).returncode == 0

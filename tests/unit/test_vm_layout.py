"""Where each VM node of the two-node tier lives (rig/vm/guest.py, rig/vm/network.py): pure functions of its index."""

from __future__ import annotations

import ipaddress
import json

import pytest

from rig.node import nodeconfig as nc
from rig.vm import guest, network

INDEXES = range(1, guest.MAX_VMS + 1)


def test_every_vm_has_its_own_name_address_tap_and_network_card() -> None:
    for describe in (guest.node_name, network.vm_address, network.tap, network.mac):
        values = [describe(i) for i in INDEXES]
        assert len(set(values)) == len(values), (describe.__name__, values)
    first = (guest.node_name(1), network.vm_address(1), network.tap(1))
    assert first == ("sharedvol-vm", "10.77.0.2", "sharedvol-tap0")
    assert guest.node_name(2) == "sharedvol-vm2"


def test_the_vms_pod_ranges_are_disjoint_from_each_other_and_the_host_nodes_and_inside_the_cluster_range() -> None:
    host = ipaddress.ip_network(nc.POD_SUBNET)
    cluster = ipaddress.ip_network(guest.CLUSTER_CIDR)
    ranges = [ipaddress.ip_network(guest.pod_subnet(i)) for i in INDEXES]
    for i, subnet in enumerate(ranges):
        assert subnet.subnet_of(cluster) and not subnet.overlaps(host), subnet
        assert not any(subnet.overlaps(other) for other in ranges[i + 1 :]), subnet


def test_the_vms_addresses_are_on_the_bridge_network_beside_the_hosts() -> None:
    bridge = ipaddress.ip_network(f"{network.HOST_ADDRESS}/{network.PREFIX}", strict=False)
    for i in INDEXES:
        assert ipaddress.ip_address(network.vm_address(i)) in bridge
        assert network.vm_address(i) != network.HOST_ADDRESS


@pytest.mark.parametrize("index", [1, 2])
def test_a_vms_kubelet_kube_proxy_and_cni_use_its_own_name_and_range(index: int) -> None:
    layout = guest.GuestLayout(network.vm_address(index), network.HOST_ADDRESS, "pause:3.10", index)

    assert f"--hostname-override={guest.node_name(index)}" in guest.start_sh(layout)
    assert f"--node-ip={network.vm_address(index)}" in guest.start_sh(layout)
    assert guest.node_name(index) in guest.kube_proxy_config(layout)
    assert guest.pod_subnet(index) in json.dumps(json.loads(guest.cni_conflist(layout)))


def test_an_index_past_the_last_vm_is_refused() -> None:
    with pytest.raises(ValueError, match="VM index 5"):
        guest.pod_subnet(guest.MAX_VMS + 1)

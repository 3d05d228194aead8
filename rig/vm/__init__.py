"""A QEMU VM node joined to the real node's control plane (``python -m rig.vm.vmnode``)."""

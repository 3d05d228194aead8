"""The rig: the real parts the tests run on and people start by hand, apart from the product and from the tests.

- :mod:`rig.cluster`: the Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok);
  ``make cluster-up``/``cluster-down``.
- :mod:`rig.node`: the real node on this machine (containerd, kubelet, kube-proxy, CNI); ``make node-up``/``node-down``.
- :mod:`rig.vm`: a QEMU VM node joined to it, whose kernel mounts NFS; ``make node-up NODES=2``.
- :mod:`rig.kfp`: the real KFP 2.17 backend and UI on the real node; ``make kfp-up``/``kfp-down``.
- :mod:`rig.kwait`: list-then-watch with a deadline (no sleeps to wait for Kubernetes); :mod:`rig.paths`,
  :mod:`rig.images`: where the repository is and what the project's images are called.

Not installed with the product (pyproject.toml packages), and never imported by it (lint-imports); the tests import
it, never the other way round.
"""

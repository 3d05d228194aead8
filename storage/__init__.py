"""Everything that talks to Kubernetes.

StorageClass inspection, strategy choice, PV/PVC specs, create and wait, diagnosis, cleanup,
and the fallback provisioner service. Never imports torch, and nothing from :mod:`steps`.
"""

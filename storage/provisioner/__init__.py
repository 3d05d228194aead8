"""``sharedvol serve``: the fallback provisioner for StorageClass ``sharedvol-hostpath`` (``sharedvol.io/hostpath``).

It serves its class the way any external provisioner does, so KFP's own ``CreatePVC`` claims (UUID names,
recurring runs) and KFP's workspace claims bind on local-path clusters: a hostPath PV on the claim's
node, pre-bound to the claim, named after the claim's UID so a restart never makes two.
"""

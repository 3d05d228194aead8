"""The compiled variants the KFP backend tier checks: the ones ``sharedvol compile`` writes."""

from __future__ import annotations

from pipelines import options

# The variants `sharedvol compile` writes: claim per run, existing claim, static PV, KFP's workspace, and train-resnet
# as a TrainJob of two nodes (--workers 2) with a claim per run.
SELECTOR = {"nvidia.com/gpu.present": "true"}
TOLERATIONS = (*options.CompileOptions().tolerations, options.Toleration.parse("dedicated=ml:NoExecute"))
VARIANTS = {
    "claim-per-run": options.CompileOptions(
        storage=options.StorageChoice.dynamic("sharedvol-nfs"), node_selector=SELECTOR, tolerations=TOLERATIONS
    ),
    "existing-claim": options.CompileOptions(
        storage=options.StorageChoice.existing("team-data"), node_selector=SELECTOR, tolerations=TOLERATIONS
    ),
    "static-pv": options.CompileOptions(
        storage=options.StorageChoice.static("sharedvol-pv-0"), node_selector=SELECTOR, tolerations=TOLERATIONS
    ),
    "workspace": options.CompileOptions(
        storage=options.StorageChoice.dynamic("sharedvol-nfs"),
        node_selector=SELECTOR,
        tolerations=TOLERATIONS,
        workspace=True,
    ),
    "workers2": options.CompileOptions(
        storage=options.StorageChoice.dynamic("sharedvol-nfs"),
        node_selector=SELECTOR,
        tolerations=TOLERATIONS,
        workers=2,
    ),
}

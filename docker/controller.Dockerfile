# A controller image for the real node, from a static binary built by scripts/trainer/build.sh (Kubeflow Trainer's
# trainer-controller-manager or JobSet's controller), on the same debootstrapped base as the project's images:
#
#   scripts/trainer/images.sh     # both controllers, cached by content hash, imported into a running node
#
# The build context holds the one binary, named `manager`. The controllers' Deployments run /manager (JobSet names it,
# Trainer uses the entrypoint) as a non-root user (JobSet's pod sets runAsNonRoot).
FROM debian:bookworm-slim

COPY manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

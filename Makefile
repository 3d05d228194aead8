# sharedvol: every target sets up what it needs (a cached venv, the cached control plane) first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV = $(eval VENV := $$(shell scripts/venv.sh))$(VENV)
PY = $(VENV)/bin/python
RUN = PYTHONPATH=$(CURDIR) $(PY)
CLUSTER_DIR ?= $(CURDIR)/.cluster
DEMO_DIR ?= $(CURDIR)/demo
IMAGE_TAG ?= $(shell scripts/version.sh)
IMAGE ?= sharedvol:$(IMAGE_TAG)
NODE_DIR ?= $(CURDIR)/.node

.PHONY: help preflight venv controlplane kfpcheck test lint unit demo install compile bench bench-train bench-data bench-loader bench-ddp bench-gpu bench-controlplane bench-storage bench-fallback bench-demo \
        cluster-up cluster-down node-up node-down image test-node test-vm bench-node need-root clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

venv: ## create or reuse the cached virtual environment (outside the repo)
	@echo "venv: $(VENV)"

controlplane: ## build or reuse the cached Kubernetes control-plane binaries
	@scripts/controlplane/build.sh

kfpcheck: ## build or reuse the cached KFP 2.17 backend checker (tests/kfpcheck)
	@scripts/kfpcheck/build.sh

lint: venv ## ruff, mypy, the import floors (lint-imports: pyproject.toml) and the Dockerfile linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/hadolint docker/Dockerfile docker/controller.Dockerfile

test: preflight venv lint ## every test, every tier: real node and real KFP included (root; checks what it needs first, lints, then builds and starts all it needs; docs/tests.md)
	@scripts/node/packages.sh && \
	  SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) && \
	  SHAREDVOL_KFPCHECK_BIN=$$(scripts/kfpcheck/build.sh) && \
	  SHAREDVOL_KFP_BIN=$$(scripts/kfp/build.sh) && scripts/kfp/mlmd-venv.sh >/dev/null && \
	  SHAREDVOL_TRAINER_DIR=$$(scripts/trainer/build.sh) && \
	  SHAREDVOL_KFP_UI=$$(scripts/kfp/ui-build.sh) && \
	  export SHAREDVOL_CONTROLPLANE_BIN SHAREDVOL_KFPCHECK_BIN SHAREDVOL_KFP_BIN SHAREDVOL_TRAINER_DIR SHAREDVOL_KFP_UI && \
	  $(RUN) -m pytest --durations=25

preflight: ## what make test needs before it builds anything (root, python3-venv, Go 1.26, apt-get), all named at once
	@scripts/preflight.sh

test-kfp: need-root venv kfp-build ## only the real KFP backend tier (root; about 18 min of builds cold): the pipeline run by KFP 2.17.0 on the real node, seen in its UI
	@scripts/node/packages.sh
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) SHAREDVOL_KFP_BIN=$$(scripts/kfp/build.sh) \
	  SHAREDVOL_TRAINER_DIR=$$(scripts/trainer/build.sh) SHAREDVOL_KFP_UI=$$(scripts/kfp/ui-build.sh) $(RUN) -m pytest -m kfp_real

need-root:
	@[ "$$(id -u)" = 0 ] || { echo "make: the real-node tier (tests/node) runs real pods and needs root: run it as root (CI does), or run make unit" >&2; exit 1; }

test-vm: need-root venv ## only the two-node tier (root): the real node plus a QEMU VM node, k8s/nfs mounted by the VM's kernel (tests/vm)
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) -m pytest -m vm

test-node: need-root venv ## only the real-node tier (root); SHAREDVOL_TEST_NODE_DIR=.node reuses a node from make node-up
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) SHAREDVOL_TRAINER_DIR=$$(scripts/trainer/build.sh) \
	  $(RUN) -m pytest -m node

unit: venv ## the unit tier only (tests/unit): needs nothing but the venv (no control plane, no training, no browser)
	$(RUN) -m pytest -m unit tests/unit

demo: venv ## the whole pipeline on this machine, on a small generated dataset
	$(RUN) -m pipelines demo --output $(DEMO_DIR)
	@echo "next: make install installs the sharedvol command and says where (sharedvol --help; README.md lists the jobs)"

install: ## install the `sharedvol` command: this checkout as a package (pip, not editable) into ~/.local/share/sharedvol/venv, linked into /usr/local/bin (root) or ~/.local/bin
	@scripts/install.sh

compile: venv ## write the pipeline YAML for upload in the KFP UI
	$(RUN) -m pipelines compile -o resnet18_cifar10.yaml

bench: bench-train bench-data bench-loader bench-gpu bench-controlplane bench-storage bench-fallback bench-demo ## every benchmark (results: BENCHMARKS.md)

bench-train: venv ## train-resnet vs a bare PyTorch loop, and the data-plane publish/verify/load
	$(RUN) benchmarks/bench_train.py

bench-data: venv ## the checkpoint handoff and resume against plain torch.save + torch.load
	$(RUN) benchmarks/bench_dataplane.py

bench-loader: venv ## images/s per core into the model: stock input path vs batched on-device augmentation
	$(RUN) benchmarks/bench_loader.py

bench-ddp: venv ## the same epoch of train-resnet with 1 and 2 torchrun workers on this machine's CPU (images/s, all-reduce time)
	$(RUN) benchmarks/bench_ddp.py

bench-gpu: venv ## train-resnet on one GPU with the CUDA defaults (says so and exits 0 without CUDA)
	$(RUN) benchmarks/bench_gpu.py

bench-storage: venv ## claim create -> Bound on the real control plane; doctor start-up
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) benchmarks/bench_storage.py

bench-controlplane: venv ## warm start-up of the test control plane
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) benchmarks/bench_controlplane.py

bench-fallback: venv ## fallback provisioner: claim created -> PV bound
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) benchmarks/bench_fallback.py

bench-demo: venv ## end-to-end time of the demo after set-up
	$(RUN) benchmarks/bench_demo.py

bench-node: venv ## the real node (root): node-up warm, a tiny pod create -> Succeeded, image build and import times
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) benchmarks/bench_node.py

cluster-up: venv ## start the test control plane in the background, kubeconfig in .cluster/
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) -m rig.cluster up --dir $(CLUSTER_DIR)

cluster-down: venv ## stop the control plane started by cluster-up
	$(RUN) -m rig.cluster down --dir $(CLUSTER_DIR)

NODES ?= 1

node-up: venv ## a real one-node cluster (root): control plane, containerd, kubelet, kube-proxy; kubeconfig in .node/; NODES=2 adds a VM node (QEMU) whose kernel mounts NFS, NODES=3 a second one
	@[[ "$(NODES)" =~ ^[123]$$ ]] || { echo "make: NODES is 1 (the real node), 2 (plus a VM node) or 3 (plus two VM nodes)" >&2; exit 1; }
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) $(RUN) -m rig.node.realnode up --dir $(NODE_DIR)
	$(if $(filter 2 3,$(NODES)),$(RUN) -m rig.vm.vmnode up --node-dir $(NODE_DIR))
	$(if $(filter 3,$(NODES)),$(RUN) -m rig.vm.vmnode up --index 2 --node-dir $(NODE_DIR))

node-down: venv ## stop the node started by node-up (its pods first), every process by pid; the VM node and its network first
	$(RUN) -m rig.vm.vmnode down --node-dir $(NODE_DIR)
	$(RUN) -m rig.node.realnode down --dir $(NODE_DIR)

image: ## build the step, provisioner and NFS server images (Docker engine); IMAGE=NAME also tags the step image; after node-up, also into the node
	NODE_DIR=$(NODE_DIR) scripts/node/image.sh $(IMAGE_TAG)
	$(if $(filter-out sharedvol:$(IMAGE_TAG),$(IMAGE)),docker tag sharedvol:$(IMAGE_TAG) $(IMAGE))

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache runs .cluster .kfp

# ----- the real KFP 2.17.0 backend (docs/kfp-backend.md)
KFP_DIR ?= $(CURDIR)/.kfp
.PHONY: kfp-build kfp-up kfp-down test-kfp ui-screenshots bench-kfp

kfp-build: ## build or reuse the real KFP backend (KFP 2.17.0 from sources, Argo, MinIO), the MLMD venv and the KFP UI
	@scripts/kfp/build.sh && scripts/kfp/mlmd-venv.sh && scripts/kfp/ui-build.sh

kfp-up: need-root venv kfp-build ## the real node (started with the images when none runs in NODE_DIR) plus the real KFP backend, Kubeflow Trainer and JobSet on it (KFP_KWOK=1: on the kwok control plane)
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) SHAREDVOL_KFP_BIN=$$(scripts/kfp/build.sh) IMAGE_TAG=$(IMAGE_TAG) \
	  SHAREDVOL_TRAINER_DIR=$$(scripts/trainer/build.sh) SHAREDVOL_KFP_UI=$$(scripts/kfp/ui-build.sh) $(RUN) -m rig.kfp up --dir $(KFP_DIR) --node-dir $(NODE_DIR) $(if $(KFP_KWOK),--kwok)

kfp-down: venv ## stop the backend started by kfp-up, and the node if kfp-up started it
	$(RUN) -m rig.kfp down --dir $(KFP_DIR)

UI_SHOTS ?= $(CURDIR)/docs/images/ui

ui-screenshots: need-root venv kfp-build ## docs/images/ui/*.png from real runs on the real backend, as the KFP UI shows them (the browser test's pages)
	@scripts/node/packages.sh
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) SHAREDVOL_KFP_BIN=$$(scripts/kfp/build.sh) \
	  SHAREDVOL_KFP_UI=$$(scripts/kfp/ui-build.sh) SHAREDVOL_UI_SCREENSHOTS=$(UI_SHOTS) \
	  $(RUN) -m pytest -q tests/kfp_backend/real/test_ui_browser.py -k "not check_fails"
	@ls -l $(UI_SHOTS)

bench-kfp: need-root venv kfp-build ## the real backend (root): the pipeline with tiny settings next to an empty DAG of the same shape
	SHAREDVOL_CONTROLPLANE_BIN=$$(scripts/controlplane/build.sh) SHAREDVOL_KFP_BIN=$$(scripts/kfp/build.sh) \
	  SHAREDVOL_KFP_UI=$$(scripts/kfp/ui-build.sh) $(RUN) benchmarks/bench_kfp.py

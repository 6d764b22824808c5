# The one command that runs every test: `make test`. CI (.ci/run) calls exactly this.
GO ?= go

.PHONY: test build vet fmt-check bench bench-side-by-side kubectl conformance upstream-conformance sample-apiserver crash-safety chaos fuzz

build:
	$(GO) build -o bin/skiff ./cmd/skiff

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: fmt-check vet
	$(GO) test -count=1 -timeout 40m ./...

# Stock kubectl 1.37 (the API version skiff serves) built from k8s.io/kubectl in its own module
# (tools/kubectl), into bin/kubectl-1.37; apiserver/kubectl_test.go runs it when present.
KUBECTL_VERSION := v1.37.2
KUBECTL_LDFLAGS := -s -w $(foreach kv,gitVersion=$(KUBECTL_VERSION) gitMajor=1 gitMinor=37 gitTreeState=clean,-X k8s.io/component-base/version.$(kv))
kubectl:
	cd tools/kubectl && $(GO) build -trimpath -ldflags '$(KUBECTL_LDFLAGS)' -o ../../bin/kubectl-1.37 .

# Upstream's sample extension API server (k8s.io/sample-apiserver) built in its own module
# (tools/sample-apiserver), into bin/sample-apiserver, once per release it names;
# apiserver/aggregation_sample_test.go registers it by APIService when present. Static, with the
# flags the conformance suite builds its sample-apiserver image with, which then finds it cached.
sample-apiserver: bin/sample-apiserver
bin/sample-apiserver: tools/sample-apiserver/go.mod tools/sample-apiserver/go.sum
	cd tools/sample-apiserver && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o ../../bin/sample-apiserver k8s.io/sample-apiserver

# The load benchmark against a fresh `skiff up`; figures go into bench/README.md.
bench: build
	$(GO) run ./bench/cmd/skiff-bench --skiff bin/skiff

# skiff beside upstream 1.37.2 on the same machine, back to back, with the ratios: the API load
# (skiff apiserver against kube-apiserver on etcd), then the whole cluster on 100 simulated nodes
# (skiff's parts against kube-apiserver, kube-controller-manager and kube-scheduler, kwok's
# nodes on both sides). Upstream's binaries are built once into ~/.cache/upstream-bench (bench/upstream).
# SIDE_BY_SIDE_ARGS adds flags to the cluster bench, e.g. '--nodes 1000 --scenarios scale'.
SIDE_BY_SIDE_ARGS ?=
bench-side-by-side: build
	bash bench/upstream/build.sh
	$(GO) run ./bench/cmd/skiff-bench --skiff bin/skiff --control-plane both
	$(GO) run ./bench/cmd/skiff-cluster-bench --skiff bin/skiff --control-plane both --kwok --log /tmp/skiff-cluster-bench.log $(SIDE_BY_SIDE_ARGS)

# The conformance suite (conformance/README.md): against a fresh `skiff up` it starts itself, or
# the cluster of CONFORMANCE_ARGS='--kubeconfig=PATH'. Ends with passed/failed/skipped by area,
# the run time and why each skipped spec skipped.
CONFORMANCE_ARGS ?=
conformance:
	$(GO) test -count=1 -timeout 30m -v ./conformance -args -ginkgo.v $(CONFORMANCE_ARGS)

# Upstream's own conformance specs (e2e.test v1.37.2, built from the module proxy and cached in
# ~/.cache/upstream-e2e with the images its specs run) against a fresh `skiff up`; writes
# conformance/UPSTREAM.md. 20-60 minutes: not part of `make test`. FOCUS='Pods should' runs a part.
upstream-conformance: build
	bash conformance/upstream/run.sh bin/skiff

# kill -9 of skiff up with the issue's 20 running pods, restart, clean stop and skiff reset
# (e2e/crashsafety; `make test` runs it with 3 pods).
crash-safety:
	SKIFF_CRASH_PODS=20 $(GO) test -count=1 -timeout 40m -v ./e2e/crashsafety

# The chaos tests with 20 kill -9s each under a mixed client-go load (`make test` runs 3 and 5):
# of skiff up, and of one part at a time of a cluster run as separate processes (API server,
# scheduler, controller manager, kubelet, containerd), converging after each.
chaos:
	SKIFF_CHAOS_KILLS=20 $(GO) test -count=1 -timeout 60m -v -run 'TestAcknowledgedWritesSurviveKill9OfSkiffUp|TestClusterConvergesAfterKill9OfEachPartAlone' ./e2e/crashsafety

# Every fuzz target for FUZZTIME each, one after another (`make test` runs their seed corpora).
FUZZTIME ?= 10m
FUZZ_TARGETS := ./apiserver:FuzzDecodeBody ./apiserver:FuzzPatch ./apiserver:FuzzListOptions \
	./registry/storage:FuzzDecodeContinue ./registry/storage:FuzzContinueRoundTrip ./registry/storage:FuzzParseResourceVersion
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

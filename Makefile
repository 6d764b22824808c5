# The one command that runs every test: `make test`. CI (.ci/run) calls exactly this.
GO ?= go

.PHONY: test build vet fmt-check bench

build:
	$(GO) build -o bin/skiff ./cmd/skiff

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: fmt-check vet
	$(GO) test -count=1 -timeout 25m ./...

# The load benchmark against a fresh `skiff up`; figures go into bench/README.md.
bench: build
	$(GO) run ./bench/cmd/skiff-bench --skiff bin/skiff

# certalloc: see README.md. Every target needs only Go (and a shell).
GO       ?= go
BIN      := bin/certalloc
FUZZTIME ?= 20s
# The SDK's default credentials chain ends at the ECS metadata service;
# nothing run from here may reach for it.
export ALIBABA_CLOUD_ECS_METADATA_DISABLED := true

.PHONY: all build test vet lint fuzz bench bench-ci demo ci clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/certalloc

# The test command of the README and of CI.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

# gofmt must print nothing; staticcheck is pinned in go.mod as a tool.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck -version
	$(GO) tool staticcheck ./...
	$(GO) mod verify

# Each fuzz target for FUZZTIME; crashers land in testdata/fuzz as seeds.
fuzz:
	$(GO) test ./pkg/plan -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/report -run '^$$' -fuzz '^FuzzReadFrom$$' -fuzztime $(FUZZTIME)

# Go benchmarks of the hot paths, then the pacing, throughput and dry-run
# figures against the emulator (about 90s).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1s ./pkg/plan ./pkg/report
	$(BIN) bench

# The deterministic part of the bench, for CI: the pacer's rate and window,
# and the million-row dry run.
bench-ci: build
	$(BIN) bench --scenario pace,dryrun

# Starts the bundled emulator on a free loopback port, applies
# plans/example.csv to it through the real SDK over HTTP, and stops it.
demo: build
	@set -e; dir=$$(mktemp -d); \
	$(BIN) emulator --listen 127.0.0.1:0 --addr-file $$dir/addr --latency 20ms-80ms --quiet > $$dir/emulator.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; rm -rf $$dir' EXIT; \
	for i in $$(seq 50); do [ -s $$dir/addr ] && break; sleep 0.1; done; \
	[ -s $$dir/addr ] || { cat $$dir/emulator.log; exit 1; }; \
	echo "emulator at $$(cat $$dir/addr)"; \
	ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI5tEmuLatorKey0000000 \
	ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-secret-not-a-real-key \
	ALIBABA_CLOUD_SECURITY_TOKEN= \
	$(BIN) apply --endpoint $$(cat $$dir/addr) plans/example.csv

ci: lint test fuzz bench-ci

clean:
	rm -rf bin plans/*.report.csv plans/*.failures.csv plans/*.planned.csv

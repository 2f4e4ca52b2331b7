# certalloc: see README.md. Every target needs only Go (and a shell).
GO       ?= go
BIN      := bin/certalloc
FUZZTIME ?= 20s
# The SDK's default credentials chain ends at the ECS metadata service;
# nothing run from here may reach for it.
export ALIBABA_CLOUD_ECS_METADATA_DISABLED := true

# Release builds: the version stamped into every binary, and the
# platforms operators run certalloc on. VERSION can be overridden
# (make release VERSION=v1.2.0).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64
DIST      := dist
LDFLAGS   := -X github.com/certalloc/certalloc/pkg/cli.Version=$(VERSION)

.PHONY: all build test vet lint fuzz bench bench-ci demo ci clean cross release

all: build

# Stamped like a release (certalloc --version names the commit), so that a
# bug report from a local build says what was built.
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/certalloc

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
	@# Test code too must build on every platform a release targets.
	@for os in darwin windows; do echo "GOOS=$$os go vet ./..."; GOOS=$$os $(GO) vet ./... || exit 1; done

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
	$(BIN) bench --scenario pace,dryrun,resume,baseline

# Starts the bundled emulator on a free loopback port, applies
# plans/example.csv to it through the real SDK over HTTP, and stops it.
# The record is the emulator's, not an account's: it goes to
# plans/example.demo.*, so that it is never taken for the plan's own record
# (an apply of plans/example.csv after the demo starts afresh, and a
# --baseline or --resume never reads the emulator's state), and each demo
# replaces the last one's (--overwrite).
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
	$(BIN) apply --overwrite --report plans/example.demo.report.csv --failures plans/example.demo.failures.csv \
		--endpoint $$(cat $$dir/addr) plans/example.csv

# Every release platform, static (CGO_ENABLED=0) and without local paths
# (-trimpath), into dist/certalloc_<version>_<os>_<arch>[.exe]. CI runs it
# so that no platform breaks unnoticed.
cross:
	@case "$(VERSION)" in ""|*/*|*" "*) echo "VERSION \"$(VERSION)\" cannot be part of a file name"; exit 1;; esac
	rm -rf $(DIST)
	mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
		out=$(DIST)/certalloc_$(VERSION)_$${os}_$${arch}$$ext; \
		echo "  $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/certalloc; \
	done

# The binaries of cross and their checksums, in sha256sum's format
# (check with: cd dist && sha256sum -c SHA256SUMS).
release: cross
	@cd $(DIST) && if command -v sha256sum >/dev/null; then sha256sum certalloc_*; else shasum -a 256 certalloc_*; fi > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

ci: lint test fuzz bench-ci

clean:
	rm -rf bin $(DIST) plans/*.report.csv plans/*.failures.csv plans/*.planned.csv plans/*.lock plans/*.journal

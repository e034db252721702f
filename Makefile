# Presence: `make run` runs the whole pipeline, `make test` runs every test,
# `make bench` measures it against raw Redis and Kafka.

MODULES  := schemas redisstore service gateway processor queryapi presence deploy
PACKAGES := $(addsuffix /...,$(addprefix ./,$(MODULES)))
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
FUZZTIME ?= 30s
# How long a new input is shrunk: the default minute would take a whole
# FUZZTIME to shrink one input derived from a 1 MB seed.
FUZZMINIMIZETIME ?= 5s
# The version the binaries report (--version, presence_build_info): the
# last tag, the commits since it and -dirty (git describe), "dev" outside a
# git checkout; `make build VERSION=v1.2.3` names it. BIN is where build
# puts them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS = -X github.com/presence-im/presence/service/cli.version=$(VERSION)
BIN ?= bin

.PHONY: build run test vet fuzz bench redis-server promtool protoc chromium proto clean

## build: put presence, gateway, processor and queryapi in bin/, each
## reporting VERSION
build:
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/presence ./presence/cmd/presence
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/gateway ./gateway/cmd/gateway
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/processor ./processor/cmd/processor
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/queryapi ./queryapi/cmd/queryapi

## run: the whole pipeline in one process, on embedded Kafka and Redis
run: build
	./bin/presence dev

## test: vet and run every test, integration tests included (they start
## their own redis-server, installed here when missing; deploy's alert rule
## tests run promtool, and a test decodes records from the .proto alone
## with protoc; the console's test drives a headless chromium: all
## installed here when missing too)
test: vet redis-server promtool protoc chromium
	go test -count=1 -timeout 8m $(PACKAGES)

vet:
	go vet $(PACKAGES)

## fuzz: run every fuzz test (func Fuzz… in a _test.go file) for FUZZTIME
## each, one after another (go test fuzzes one target at a time); an input
## that fails is kept under its package's testdata/fuzz/ and is a seed of
## make test from then on. Go 1.26 can end a timed run with a bare "context
## deadline exceeded" and no failing input (go.dev/issue/75804): that run
## is reported, not failed.
fuzz: redis-server
	@failed=; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' $(MODULES)); do \
		dir=$$(dirname $$file); \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz: $$fn in ./$$dir for $(FUZZTIME)"; \
			log=$$(mktemp); \
			go test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./$$dir 2>&1 | tee $$log; \
			if ! grep -q '^ok' $$log; then \
				if grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
					echo "fuzz: $$fn: Go's fuzztime race (go.dev/issue/75804), no failing input: not counted"; \
				else failed="$$failed $$fn"; fi; \
			fi; \
			rm -f $$log; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

## bench: the standard benchmark set, each scenario against the raw tools
## (a few minutes on 2 cores); the table goes to stdout, progress to
## stderr, the latency distributions to bench.svg
bench: build redis-server
	./bin/presence bench --chart bench.svg

redis-server:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
		echo "redis-server or redis-cli is missing: installing them (Debian packages redis-server, redis-tools)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server redis-tools; }

## promtool: Debian's prometheus package brings promtool. Its post-install
## starts a Prometheus on :9090 (through systemd, or its init script where
## systemd does not run); the tests need promtool alone, so that server is
## stopped and disabled again, leaving the port to `docker compose up`.
promtool:
	@command -v promtool >/dev/null || { \
		echo "promtool is missing: installing it (Debian package prometheus; its server is stopped and disabled)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus && \
		{ $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || \
			{ $(SUDO) update-rc.d prometheus disable >/dev/null 2>&1; $(SUDO) /etc/init.d/prometheus stop >/dev/null 2>&1; true; }; }; }

protoc:
	@command -v protoc >/dev/null || { \
		echo "protoc is missing: installing it (Debian package protobuf-compiler)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq protobuf-compiler; }

## chromium: the headless browser the console's test drives (Debian
## package chromium, about 20 s to install)
chromium:
	@command -v chromium >/dev/null || { \
		echo "chromium is missing: installing it (Debian package chromium)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

## proto: regenerate schemas/presencepb from schemas/proto
proto: protoc
	GOBIN=$(CURDIR)/bin go install $(PROTOC_GEN_GO)
	PATH="$(CURDIR)/bin:$$PATH" protoc -I schemas/proto \
		--go_out=schemas --go_opt=module=github.com/presence-im/presence/schemas \
		schemas/proto/presence/v1/presence.proto

clean:
	rm -rf bin

# tsrep: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need: Go modules through the Go proxy, and influxd
# v1.8.10 built once into .tools/bin with `go install`.

GO      ?= go
ROOT    := $(abspath .)
INFLUXD := $(ROOT)/.tools/bin/influxd
export TSREP_INFLUXD := $(INFLUXD)

# Fuzz each decoder/loader briefly in `make test`; longer runs: make fuzz FUZZTIME=10m
FUZZTIME ?= 10s

.PHONY: all build test unit fuzz demo influxd influxd-start influxd-stop bench clean

all: build

build:
	$(GO) build -o bin/tsrep ./cmd/tsrep

$(INFLUXD):
	scripts/influxd.sh install

influxd: $(INFLUXD)

## test: vet, every test (against a real influxd and an embedded Kafka-protocol broker), brief fuzzing
test: $(INFLUXD)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 60m ./...
	$(MAKE) --no-print-directory fuzz

unit:
	$(GO) test -count=1 -short ./...

## fuzz: each fuzz target for FUZZTIME, starting from the corpora in */testdata/fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLineProtocol$$' -fuzztime $(FUZZTIME) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzLineProtocolMatchesReference$$' -fuzztime $(FUZZTIME) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzJSON$$' -fuzztime $(FUZZTIME) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzCheckpointBody$$' -fuzztime $(FUZZTIME) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzCheckpointFile$$' -fuzztime $(FUZZTIME) ./pipeline

## demo: local influxd + embedded broker + bundled ETTh1 through the whole pipeline, then a Flux query
demo: $(INFLUXD)
	scripts/demo.sh

influxd-start: $(INFLUXD)
	scripts/influxd.sh start

influxd-stop:
	scripts/influxd.sh stop

clean:
	rm -rf bin var

# tsrep: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need: Go modules through the Go proxy, and influxd
# v1.8.10 built once into .tools/bin with `go install`.

GO      ?= go
ROOT    := $(abspath .)
INFLUXD := $(ROOT)/.tools/bin/influxd
export TSREP_INFLUXD := $(INFLUXD)

# Fuzz each decoder/loader briefly in `make test`; longer runs: make fuzz FUZZTIME=10m
# The default is a count of inputs (about 10 s a target here), not a duration:
# Go 1.26's fuzzing coordinator can report a spurious "context deadline
# exceeded" failure when a duration -fuzztime expires while a worker is busy
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 25000x
# Minimise each new input with at most this many runs: the checkpoint targets'
# inputs are ~35 KB, and the default (60s per input) spends all of FUZZTIME
# minimising instead of fuzzing.
FUZZMIN  ?= 200x

.PHONY: all build build-openblas test unit fuzz demo influxd influxd-start influxd-stop bench bench-openblas bench-quality clean

all: build

build:
	$(GO) build -buildvcs=auto -o bin/tsrep ./cmd/tsrep

## build-openblas: the same binary with OpenBLAS behind gonum (needs Debian's libopenblas-dev)
build-openblas:
	@ldconfig -p | grep -q libopenblas || { echo "libopenblas-dev is missing: apt-get install -y libopenblas-dev"; exit 1; }
	CGO_ENABLED=1 $(GO) build -buildvcs=auto -tags openblas -o bin/tsrep ./cmd/tsrep

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
	$(GO) test -run '^$$' -fuzz '^FuzzLineProtocol$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzLineProtocolMatchesReference$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./ingest
	$(GO) test -run '^$$' -fuzz '^FuzzCheckpointBody$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzCheckpointFile$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzMessagePath$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzInterpolate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./config

## demo: local influxd + embedded broker + bundled ETTh1 through the whole pipeline, then InfluxQL queries of what was learned;
## influxd keeps running afterwards, for the README's queries of the demo's bucket (make influxd-stop stops it)
demo: $(INFLUXD) build
	scripts/with-influxd.sh --keep sh -c 'bin/tsrep demo --influx-url "$$TSREP_INFLUX_URL"'

## bench: hot-path micro-benchmarks (allocations per point), learner kernels, then the end-to-end
## throughput benchmark (5M points, 1000 series, 4 partitions; phases (a)-(e), (e) without anomaly scores) against a local influxd
BENCHFLAGS ?=
bench: $(INFLUXD) build
	$(GO) test -run '^$$' -bench . -benchmem ./ingest ./windowing ./sinks ./models
	scripts/with-influxd.sh sh -c 'bin/tsrep bench throughput --influx-url "$$TSREP_INFLUX_URL" $(BENCHFLAGS)'

## bench-openblas: the learner kernels and the throughput benchmark with OpenBLAS
bench-openblas: $(INFLUXD) build-openblas
	CGO_ENABLED=1 $(GO) test -tags openblas -run '^$$' -bench 'PipelineStep|LearnStep' ./models
	scripts/with-influxd.sh sh -c 'bin/tsrep bench throughput --influx-url "$$TSREP_INFLUX_URL" $(BENCHFLAGS)'

## bench-quality: the learner on ETTh1/ETTh2 (online forecasting; imputation per series and with window.multichannel; 3 seeds each), the 27 UCR sets (representations, 3 seeds, beside MiniRocket and the published figures; and three of them learnt over 4 partitions sharing one encoder) and NAB (anomaly scores, beside NAB's scoreboard), all with the deployed defaults
bench-quality: build
	bin/tsrep bench forecast --seeds 3 data/ETT/ETTh1.csv
	bin/tsrep bench forecast --seeds 3 data/ETT/ETTh2.csv
	bin/tsrep bench impute --seeds 3 data/ETT/ETTh1.csv
	bin/tsrep bench impute --seeds 3 data/ETT/ETTh2.csv
	bin/tsrep bench impute --multichannel --seeds 3 data/ETT/ETTh1.csv
	bin/tsrep bench impute --multichannel --seeds 3 data/ETT/ETTh2.csv
	bin/tsrep bench repr --seeds 3 $(sort $(dir $(wildcard data/UCR/*/*_TRAIN.tsv)))
	bin/tsrep bench repr --seeds 3 --partitions 4 data/UCR/Adiac/ data/UCR/HouseTwenty/ data/UCR/ShapeletSim/
	bin/tsrep bench nab

influxd-start: $(INFLUXD)
	scripts/influxd.sh start

influxd-stop:
	scripts/influxd.sh stop

clean:
	rm -rf bin var

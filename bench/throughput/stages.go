package throughput

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// Stage is the share of (c)'s CPU time spent in one stage of the pipeline.
type Stage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"cpu_seconds"`
	Share   float64 `json:"share"`
}

// stageRules attribute a sample to a stage: a checkpoint anywhere on the
// stack makes it "checkpoint+commit"; otherwise the frame nearest the leaf
// that matches a rule decides (so Arrow's builder code called by the
// windowing stage counts as "arrow build", gonum's kernels called by a
// learner as "learn", and windowing called from a decoder's handler as
// "windowing").
var stageRules = []struct {
	name     string
	patterns []string
}{
	{"checkpoint+commit", []string{"pipeline.(*DirStore).Save", "ingest.(*KafkaStateStore).Save", "pipeline.(*learnStage).appendCheckpoint", "ingest.(*Generation).Commit", "windowing.(*Windower).AppendState"}},
	{"arrow build", []string{"windowing.(*batchBuilder)"}},
	{"decode", []string{"tsrep/ingest.(*LineProtocol)", "tsrep/ingest.(*JSON)", "tsrep/ingest.(*lpParser)", "tsrep/ingest.(*pointBuilder)"}},
	{"windowing", []string{"tsrep/windowing."}},
	{"learn", []string{"tsrep/models."}},
	{"encode", []string{"tsrep/sinks.(*Encoder)"}},
	{"sink (HTTP, gzip)", []string{"tsrep/sinks.(*Influx)", "influxdb-client-go"}},
	{"fetch (kafka-go)", []string{"segmentio/kafka-go"}},
	{"garbage collection", []string{"runtime.gcBgMarkWorker", "runtime.gcAssist", "runtime.markroot", "runtime.bgsweep", "runtime.bgscavenge"}},
}

// StageProfile splits a CPU profile into stages.
func StageProfile(path string) ([]Stage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, fmt.Errorf("%s has no cpu samples", path)
	}
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		by[classify(s)] += v
	}
	var out []Stage
	for name, v := range by {
		out = append(out, Stage{Name: name, Seconds: float64(v) / 1e9, Share: float64(v) / float64(total)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out, nil
}

func classify(s *profile.Sample) string {
	var frames []string
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil {
				frames = append(frames, l.Function.Name)
			}
		}
	}
	for _, fn := range frames {
		for _, pat := range stageRules[0].patterns {
			if strings.Contains(fn, pat) {
				return stageRules[0].name
			}
		}
	}
	for _, fn := range frames { // leaf first
		for _, r := range stageRules[1:] {
			for _, pat := range r.patterns {
				if strings.Contains(fn, pat) {
					return r.name
				}
			}
		}
	}
	return "other (runtime, scheduling, channels)"
}

package testenv

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/feed"
)

// NABMessages reads bundled NAB streams (paths under data/NAB/data/) as
// `tsrep produce --measurement nab --tags file=<name>` would, interleaved
// by time as live producers would send them.
func NABMessages(t testing.TB, files ...string) []feed.Message {
	t.Helper()
	var msgs []feed.Message
	for _, f := range files {
		fr, err := dataset.ReadCSV(DataFile(t, "NAB/data/"+f), dataset.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".csv")
		m, err := feed.CSVMessages(fr, "nab", map[string]string{"file": name})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m...)
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].Time < msgs[j].Time })
	return msgs
}

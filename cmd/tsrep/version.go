package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func init() { registry = append(registry, newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print tsrep's version, the commit it was built from, and the Go version (also: tsrep --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), readBuildInfo())
			return err
		},
	}
}

// buildInfo is what the binary knows about its build: what `tsrep version`
// prints and tsrep_build_info carries.
type buildInfo struct {
	// Version is the main module's version: a tag, a pseudo-version such
	// as v0.0.0-20261130122334-8111df8abcde (+dirty) that go build stamps
	// from the checkout, or "(devel)".
	Version string
	// Commit is the VCS revision, "" if the build had no VCS information
	// (go run, -buildvcs=false, not a checkout).
	Commit     string
	CommitTime string
	// Dirty: the working tree had uncommitted changes.
	Dirty     bool
	GoVersion string
}

func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	return buildInfoFrom(bi, ok)
}

func buildInfoFrom(bi *debug.BuildInfo, ok bool) buildInfo {
	b := buildInfo{Version: "(devel)", GoVersion: runtime.Version()}
	if !ok || bi == nil {
		return b
	}
	if v := bi.Main.Version; v != "" {
		b.Version = v
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	return b
}

// String is the text of `tsrep version`.
func (b buildInfo) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "tsrep %s\n", b.Version)
	switch {
	case b.Commit == "":
		s.WriteString("commit     unknown (built without VCS information: go run, -buildvcs=false, or outside a git checkout)\n")
	case b.Dirty:
		fmt.Fprintf(&s, "commit     %s (dirty: built with uncommitted changes)\n", b.Commit)
	default:
		fmt.Fprintf(&s, "commit     %s\n", b.Commit)
	}
	if b.CommitTime != "" {
		fmt.Fprintf(&s, "committed  %s\n", b.CommitTime)
	}
	fmt.Fprintf(&s, "go         %s %s/%s", b.GoVersion, runtime.GOOS, runtime.GOARCH)
	return s.String()
}

// newBuildInfoGauge is tsrep_build_info{version,commit,goversion} 1, the
// usual way to put a build on a dashboard (join on it, count versions).
func newBuildInfoGauge() prometheus.Collector {
	b := readBuildInfo()
	commit := b.Commit
	if commit == "" {
		commit = "unknown"
	} else if b.Dirty {
		commit += "-dirty"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "tsrep",
		Name:        "build_info",
		Help:        "Always 1; the labels say which build of tsrep runs.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

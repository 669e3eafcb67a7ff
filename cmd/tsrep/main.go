// Command tsrep learns representations of time series from a Kafka stream
// without labels and writes what it learns to InfluxDB. main only wires the
// packages; see the README for the commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tsrep:", err)
		os.Exit(1)
	}
}

// newRootCmd is tsrep with every command; --version prints what `tsrep
// version` does.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tsrep",
		Short:         "Self-supervised representations of time series from Kafka to InfluxDB",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	bi := readBuildInfo()
	root.Version = bi.Version
	root.Flags().BoolP("version", "v", false, "print the version, the commit and the Go version (as tsrep version)")
	root.SetVersionTemplate(strings.ReplaceAll(bi.String(), "{{", "{{`{{`}}") + "\n")
	root.AddCommand(commands()...)
	return root
}

// registry lets each command live in its own file: a file's init appends
// its constructor.
var registry []func() *cobra.Command

func commands() []*cobra.Command {
	out := make([]*cobra.Command, 0, len(registry))
	for _, f := range registry {
		out = append(out, f())
	}
	return out
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/bench/cardinality"
	"github.com/tsrep/tsrep/config"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchCardinalityCmd) }

func newBenchCardinalityCmd() *cobra.Command {
	var cfgPath string
	var series, steps int
	var asJSON, restore bool
	cmd := &cobra.Command{
		Use:   "cardinality",
		Short: "Bytes of state per series and peak RSS with many series (windowing, learner, scorer, encoder of one partition)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if cfgPath != "" {
				var err error
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// 100,000 series hold several GB at once while the state is
				// saved and restored: collect harder near three quarters of
				// the machine's memory rather than let the heap double.
				if total := memTotal(); total > 0 {
					debug.SetMemoryLimit(total / 4 * 3)
				}
			}
			if steps == 0 {
				steps = cfg.Window.Length + 2*cfg.Window.Stride
			}
			r, err := cardinality.Run(cfg, series, steps, restore)
			if err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(os.Stdout)
				e.SetIndent("", "  ")
				return e.Encode(r)
			}
			fmt.Printf("%d series × %d points (window %d, learner %s): %d windows in %.1fs\n",
				r.Series, r.Points/int64(r.Series), r.Length, r.Model, r.Windows, r.Seconds)
			fmt.Printf("retained heap %.0f MiB = %.0f bytes per series (windowing %.0f, learner %.0f, forecast scorer %.0f, encoder tag cache %.0f)\n",
				float64(r.HeapBytes)/(1<<20), r.BytesPerSerie, r.Windowing, r.Learner, r.Scorer, r.Encoder)
			fmt.Printf("peak RSS %.0f MiB\n", float64(r.PeakRSSBytes)/(1<<20))
			if rs := r.Restore; rs != nil {
				fmt.Printf("state in the Kafka store: %.1f MiB; encode %.2fs, save %.2fs; restore: load %.2fs + decode %.2fs = %.2fs\n",
					float64(rs.StateBytes)/(1<<20), rs.EncodeSeconds, rs.SaveSeconds, rs.LoadSeconds, rs.DecodeSeconds, rs.LoadSeconds+rs.DecodeSeconds)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration (default: the built-in defaults, as in config.toml)")
	cmd.Flags().IntVar(&series, "series", 100_000, "series to drive")
	cmd.Flags().IntVar(&steps, "steps", 0, "points per series (default: window length + 2 strides)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&restore, "restore", true, "also save the partition's state to the Kafka state store on an embedded broker and time restoring it")
	return cmd
}

// memTotal is the machine's memory in bytes from /proc/meminfo (0 where
// there is none).
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

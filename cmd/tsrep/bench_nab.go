package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/bench/nab"
	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/models"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchNABCmd) }

func newBenchNABCmd() *cobra.Command {
	var o nab.Options
	var cfgPath, model, forecast string
	var asJSON, grid bool
	a := models.DefaultAnomalyConfig()
	cmd := &cobra.Command{
		Use:   "nab",
		Short: "Anomaly scores on the Numenta Anomaly Benchmark, scored by NAB's rules next to its published detectors",
		Long: "nab runs every NAB file through the pipeline's path (windowing at stride 1, a fresh learner per file, " +
			"prequential forecasts, the anomaly score) and scores the result with NAB's method under its three " +
			"profiles, next to every detector of NAB's scoreboard. With --scores it scores another detector's " +
			"timestamp,anomaly_score files instead. With --grid it runs the grid the anomaly defaults were chosen on.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if cfgPath != "" {
				var err error
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			}
			if model != "" {
				cfg.Model.Kind = model
			}
			var log io.Writer
			if !asJSON {
				log = cmd.ErrOrStderr()
			}
			o.Run = nab.RunOptions{Config: cfg, Anomaly: a, Forecast: forecast, Log: log}
			var res interface{ WriteTable(io.Writer) error }
			var err error
			if grid {
				res, err = nab.Grid(o, nab.DefaultGrid(a))
			} else {
				res, err = nab.Bench(o)
			}
			if err != nil {
				return fmt.Errorf("bench nab: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteTable(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "nab", "data/NAB", "NAB directory (data/, labels/, results/)")
	f.StringVar(&o.Scores, "scores", "", "score this directory of another detector's timestamp,anomaly_score files (DIR/<category>/[<detector>_]<name>.csv) instead of running tsrep")
	f.StringVarP(&cfgPath, "config", "c", "", "configuration for the window and model settings (default: the built-in defaults, as in config.toml); the stride is set to 1")
	f.StringVar(&model, "model", "", "learner, overriding model.kind: ssl or rls")
	f.StringVar(&forecast, "forecast", nab.ForecastLearner, "forecast whose error is scored: learner, last (the repeat-last-value baseline) or none (range and novelty only); the last two measure what the learner adds")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of a table")
	f.BoolVar(&o.PerFile, "files", false, "with --json, include each file's score")
	f.BoolVar(&grid, "grid", false, "run the grid the anomaly defaults were chosen on (range tolerance × tail horizon × novelty k)")
	f.IntVar(&a.Warmup, "warmup", a.Warmup, "points of a series scored 0 while its statistics settle")
	f.IntVar(&a.ErrorHorizon, "error-horizon", a.ErrorHorizon, "memory, in points, of the statistics standardising the forecast error")
	f.IntVar(&a.TailHorizon, "tail-horizon", a.TailHorizon, "memory, in points, of the histogram of standardised errors")
	f.Float64Var(&a.RangeTolerance, "range-tolerance", a.RangeTolerance, "share of a series' range a value must exceed it by to be flagged (0: off)")
	f.IntVar(&a.NoveltyK, "novelty-k", a.NoveltyK, "past embeddings kept per series for the novelty channel (0: off)")
	f.IntVar(&a.NoveltyEvery, "novelty-every", a.NoveltyEvery, "points between kept embeddings")
	return cmd
}

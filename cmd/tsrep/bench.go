package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tsrep/tsrep/bench/quality"
	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/dataset"
	"github.com/tsrep/tsrep/models"
	"github.com/tsrep/tsrep/pipeline"
)

// benchSubcommands holds the constructors of `tsrep bench`'s subcommands.
// Files of this package append to it from their init; newBenchCmd reads it
// when the command tree is built, after every init has run, so the order of
// the files does not matter.
var benchSubcommands []func() *cobra.Command

func init() {
	registry = append(registry, newBenchCmd)
	benchSubcommands = append(benchSubcommands, newBenchForecastCmd, newBenchImputeCmd, newBenchReprCmd)
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the learners on public data sets against baselines and published figures",
		Long: "bench runs the quality protocols through the pipeline's own path (windowing, learner, " +
			"prequential scoring) and prints the learner next to baselines run on the same windows.",
	}
	for _, f := range benchSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}

// modelFlags binds the SSL learner's main settings to flags.
type modelFlags struct {
	cfg       models.SSLConfig
	config    string
	epochs    int
	batchSize int
	json      bool
}

func (m *modelFlags) bind(cmd *cobra.Command, epochs int) {
	// The deployed learner (config.toml's defaults), which the flags
	// below and --config override.
	m.cfg = pipeline.SSLConfig(config.Default())
	f := cmd.Flags()
	f.StringVar(&m.config, "config", "", "take the learner's settings from this config file's [model] and [window] sections (default: config.toml's built-in defaults, the deployed learner)")
	f.IntVar(&m.cfg.Dim, "dim", m.cfg.Dim, "embedding size")
	f.IntVar(&m.cfg.Hidden, "hidden", m.cfg.Hidden, "width of the encoder's convolutions")
	f.IntVar(&m.cfg.Blocks, "blocks", m.cfg.Blocks, "residual blocks of the encoder")
	f.BoolVar(&m.cfg.Multichannel, "multichannel", m.cfg.Multichannel, "window a file's columns together as the fields of one point (window.multichannel)")
	f.IntVar(&m.cfg.TrainBatch, "train-batch", m.cfg.TrainBatch, "windows per optimiser step")
	f.Float64Var(&m.cfg.LearningRate, "lr", m.cfg.LearningRate, "Adam learning rate")
	f.Float64Var(&m.cfg.Temperature, "temperature", m.cfg.Temperature, "InfoNCE temperature")
	f.Float64Var(&m.cfg.WeightHier, "w-hier", m.cfg.WeightHier, "weight of TS2Vec's hierarchical contrastive loss")
	f.Float64Var(&m.cfg.WeightInstance, "w-instance", m.cfg.WeightInstance, "weight of the instance-level InfoNCE")
	f.Float64Var(&m.cfg.KeepShare, "keep-share", m.cfg.KeepShare, "share of timesteps a training view keeps, the others masked (TS2Vec: 0.5)")
	f.IntVar(&m.cfg.ARLags, "ar-lags", m.cfg.ARLags, "lags of the learner's linear forecast experts (capped at the window length - 2)")
	f.Uint64Var(&m.cfg.Seed, "seed", m.cfg.Seed, "random seed")
	f.IntVar(&m.epochs, "epochs", epochs, "passes over the training data")
	f.IntVar(&m.batchSize, "batch", 256, "windows per Arrow batch")
	f.BoolVar(&m.json, "json", false, "print one JSON object instead of a table")
}

// load applies --config: the learner's settings become the file's, then
// the flags given on the command line are applied again over them. It
// returns the configuration the settings come from (the built-in defaults
// without --config).
func (m *modelFlags) load(cmd *cobra.Command) (config.Config, error) {
	if m.config == "" {
		return config.Default(), nil
	}
	cfg, err := config.Load(m.config)
	if err != nil {
		return cfg, err
	}
	given := map[string]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) { given[f.Name] = f.Value.String() })
	m.cfg = pipeline.SSLConfig(cfg)
	for name, v := range given {
		if err := cmd.Flags().Set(name, v); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// common is the harness's learner and budget, with --config applied, and
// the configuration they come from.
func (m *modelFlags) common(cmd *cobra.Command) (quality.Common, config.Config, error) {
	cfg, err := m.load(cmd)
	if err != nil {
		return quality.Common{}, cfg, err
	}
	var log io.Writer
	if !m.json {
		log = cmd.ErrOrStderr()
	}
	return quality.Common{Model: m.cfg, Epochs: m.epochs, BatchSize: m.batchSize, Log: log}, cfg, nil
}

// fromConfig sets the value of flag name from the configuration when it
// was not given on the command line.
func fromConfig[T any](cmd *cobra.Command, name string, dst *T, v T) {
	if !cmd.Flags().Changed(name) {
		*dst = v
	}
}

// tabler is a result that prints as a table.
type tabler interface{ WriteTable(io.Writer) error }

func (m *modelFlags) print(cmd *cobra.Command, res tabler) error {
	out := cmd.OutOrStdout()
	if m.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteTable(out)
}

func newBenchForecastCmd() *cobra.Command {
	var mf modelFlags
	var o quality.ForecastOptions
	cmd := &cobra.Command{
		Use:   "forecast FILE.csv",
		Short: "Online next-step forecasting, FSNet protocol (default split: ETTh1/ETTh2's first 14,400 rows)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			var cfg config.Config
			var err error
			if o.Common, cfg, err = mf.common(cmd); err != nil {
				return fmt.Errorf("bench forecast: %w", err)
			}
			fromConfig(cmd, "length", &o.Length, cfg.Window.Length)
			res, err := quality.RunForecast(o)
			if err != nil {
				return fmt.Errorf("bench forecast: %w", err)
			}
			return mf.print(cmd, res)
		},
	}
	mf.bind(cmd, 3)
	f := cmd.Flags()
	csvFlags(cmd, &o.CSV)
	f.StringVar(&o.Train, "train", "2880", "training rows (count, or a fraction below 1)")
	f.StringVar(&o.Val, "val", "720", "validation rows: learnt from, not scored")
	f.StringVar(&o.Test, "test", "10800", "test rows: each predicted, scored, then learnt from")
	f.IntVar(&o.Length, "length", config.Default().Window.Length, "window length (default: the deployed window.length)")
	f.IntVar(&o.AROrder, "ar-order", 60, "order of the RLS AR baselines (capped at the window length - 2)")
	f.Float64SliceVar(&o.ARForgetting, "ar-forgetting", []float64{0.99, 0.999, 0.9999}, "forgetting factors of the RLS AR baselines, one baseline of each kind per factor")
	f.IntVar(&o.Seeds, "seeds", 1, "run the learner with seeds --seed, --seed+1, ... this many; its figures are the mean over them")
	return cmd
}

func csvFlags(cmd *cobra.Command, o *dataset.CSVOptions) {
	cmd.Flags().StringVar(&o.TimeColumn, "time-column", "", "name of the time column (default: date/time/timestamp/datetime, else the first)")
	cmd.Flags().StringVar(&o.TimeLayout, "time-layout", "", "Go time layout of the time column, or \"epoch\" (default: inferred)")
}

func newBenchImputeCmd() *cobra.Command {
	var mf modelFlags
	var o quality.ImputeOptions
	cmd := &cobra.Command{
		Use:   "impute FILE.csv",
		Short: "Imputation of randomly hidden points, TimesNet protocol (default split: ETTh1)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			var err error
			if o.Common, _, err = mf.common(cmd); err != nil {
				return fmt.Errorf("bench impute: %w", err)
			}
			res, err := quality.RunImpute(o)
			if err != nil {
				return fmt.Errorf("bench impute: %w", err)
			}
			return mf.print(cmd, res)
		},
	}
	mf.bind(cmd, 1)
	f := cmd.Flags()
	csvFlags(cmd, &o.CSV)
	f.StringVar(&o.Train, "train", "8640", "training rows (count, or a fraction below 1)")
	f.StringVar(&o.Val, "val", "2784", "validation rows: learnt from, not scored")
	f.StringVar(&o.Test, "test", "2976", "test rows: windows inside them are masked and scored")
	f.IntVar(&o.Length, "length", 96, "window length")
	f.Float64SliceVar(&o.Ratios, "ratios", []float64{0.125, 0.25, 0.375, 0.5}, "shares of points hidden")
	f.Uint64Var(&o.MaskSeed, "mask-seed", 2024, "seed of the hidden points")
	f.IntVar(&o.Seeds, "seeds", 1, "run the learner with seeds --seed, --seed+1, ... this many; its figures are the mean over them")
	return cmd
}

func newBenchReprCmd() *cobra.Command {
	var mf modelFlags
	var o quality.ReprOptions
	var merge string
	var mergeRate float64
	cmd := &cobra.Command{
		Use:   "repr (TRAIN.tsv TEST.tsv | UCR_DIR)...",
		Short: "UCR classification from frozen embeddings: 1-NN cosine and linear probes vs raw 1-NN Euclidean, MiniRocket and published figures",
		Long: "repr learns from the train series without labels, embeds every train and test series (window " +
			"embeddings pooled over the series) and classifies the test series, once per seed. In the same run it " +
			"measures two baselines, 1-NN Euclidean on the raw series and MiniRocket (Dempster et al., KDD 2021), " +
			"and lists the published figures of each set from the anchors file (by default ANCHORS.csv in the " +
			"folder holding the set folders, as data/UCR/ANCHORS.csv). Arguments: a TRAIN and TEST file " +
			"pair, or one or more UCR folders (each holding NAME_TRAIN.tsv and NAME_TEST.tsv).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sets, err := quality.UCRArgs(args)
			if err != nil {
				return fmt.Errorf("bench repr: %w", err)
			}
			var cfg config.Config
			if o.Common, cfg, err = mf.common(cmd); err != nil {
				return fmt.Errorf("bench repr: %w", err)
			}
			fromConfig(cmd, "length", &o.Length, cfg.Window.Length)
			// The merge as the pipeline reads it from the configuration,
			// the flags given over the file's.
			fromConfig(cmd, "merge", &merge, cfg.Model.Merge)
			fromConfig(cmd, "merge-rate", &mergeRate, cfg.Model.MergeRate)
			cfg.Model.Merge, cfg.Model.MergeRate = merge, mergeRate
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("bench repr: --merge/--merge-rate: %w", err)
			}
			o.Merge = pipeline.MergeRule(cfg)
			res, err := quality.RunRepr(o, sets)
			if err != nil {
				return fmt.Errorf("bench repr: %w", err)
			}
			return mf.print(cmd, res)
		},
	}
	// The deployed learner (config.toml's [model], window.length) under the
	// protocol's budget: a window every 4 points, one pass over the train
	// series, and more passes over a small set up to 100 optimiser steps.
	mf.bind(cmd, 1)
	f := cmd.Flags()
	f.IntVar(&o.Length, "length", config.Default().Window.Length, "window length (capped at the shortest series; default: the deployed window.length)")
	f.IntVar(&o.Stride, "stride", 4, "window stride")
	f.IntVar(&o.MinSteps, "min-steps", 100, "more passes over small train sets, up to this many optimiser steps")
	f.IntVar(&o.Pyramid, "pyramid", 4, "levels of the temporal pooling pyramid (1: mean and max over the series)")
	f.Float64Var(&o.LevelDecay, "level-decay", 0.25, "in the 1-NN similarity, a pyramid block of a level with n runs weighs n^-level-decay")
	f.Float64Var(&o.MaxWeight, "max-weight", 0.5, "in the 1-NN similarity, the weight of the max-pooled block")
	f.IntVar(&o.Seeds, "seeds", 1, "train and evaluate the learner with seeds --seed, --seed+1, ... this many; its figures are the mean over them")
	f.IntVar(&o.Partitions, "partitions", 1, "learn over this many partition learners sharing one encoder, merged every epoch as a consumer group's partitions are (each series in the partition its id hashes to)")
	f.IntVar(&o.EpochPoints, "epoch-points", 0, "with --partitions: the encoder epoch in points of a series, one point a second (default: a quarter of a pass, at least a window)")
	f.StringVar(&merge, "merge", config.Default().Model.Merge, `with --partitions: "mean" or "sum" (model.merge)`)
	f.Float64Var(&mergeRate, "merge-rate", config.Default().Model.MergeRate, "with --partitions: scale of each merge (model.merge_rate)")
	f.Uint64Var(&o.MiniRocketSeed, "minirocket-seed", 1, "seed of MiniRocket's biases")
	f.StringVar(&o.Anchors, "anchors", "", "CSV of published accuracies (default: ANCHORS.csv in the folder holding the set folders, if there)")
	return cmd
}

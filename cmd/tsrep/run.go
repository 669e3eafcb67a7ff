package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/api"
	"github.com/tsrep/tsrep/config"
	"github.com/tsrep/tsrep/pipeline"
	"github.com/tsrep/tsrep/query"
)

func init() { registry = append(registry, newRunCmd) }

func newRunCmd() *cobra.Command {
	var cf configFlags
	var dryRun, untilEnd bool
	var warmup, timingOut, cpuProfile, memProfile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Consume the configured topics, learn, and write to InfluxDB until stopped (SIGINT/SIGTERM drain first)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, src, err := cf.load(cmd)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log)
			if dryRun {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "ok    %s: configuration is valid\n", src)
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				defer cancel()
				failed := 0
				for _, c := range pipeline.Preflight(ctx, cfg, log) {
					switch {
					case c.Err != nil:
						failed++
						fmt.Fprintf(out, "FAIL  %s: %v\n", c.What, c.Err)
					case c.Warning != "":
						fmt.Fprintf(out, "WARN  %s: %s\n", c.What, c.Warning)
					default:
						fmt.Fprintf(out, "ok    %s: %s\n", c.What, c.Note)
					}
				}
				if failed > 0 {
					return fmt.Errorf("%d checks failed", failed)
				}
				return nil
			}
			warmFrom, err := query.ParseTime(warmup, time.Now())
			if err != nil {
				return fmt.Errorf("--warmup-from: %w", err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfoGauge())
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				if err := rpprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer func() { rpprof.StopCPUProfile(); f.Close() }()
			}
			if memProfile != "" {
				defer func() {
					if f, err := os.Create(memProfile); err == nil {
						runtime.GC()
						_ = rpprof.WriteHeapProfile(f)
						f.Close()
					}
				}()
			}
			var tm pipeline.Timing
			health := pipeline.NewHealth(reg, nil)
			// The HTTP API reads what tsrep wrote, on the ops listener.
			q, err := query.Open(query.Options{
				URL: cfg.Influx.URL, Token: os.Getenv(cfg.Influx.TokenEnv), Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
				Prefix: cfg.Influx.MeasurementPrefix, Language: query.Language(cfg.Influx.QueryLanguage), Timeout: cfg.Influx.Timeout.Duration,
			})
			if err != nil {
				return err
			}
			defer q.Close()
			stopOps, err := startOps(cfg.HTTP, reg, health.Ready, log, api.Handler(q, api.Options{Model: cfg.Model.Name, Log: log}))
			if err != nil {
				return err
			}
			defer stopOps()
			err = pipeline.RunService(cmd.Context(), cfg, pipeline.ServiceOptions{
				Log: log, Registry: reg, UntilEnd: untilEnd, WarmupFrom: warmFrom, Timing: &tm, Health: health,
			})
			if err != nil {
				return err
			}
			return writeTiming(timingOut, &tm)
		},
	}
	cf.register(cmd.Flags(), flagBrokers|flagInfluxURL, false)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate the configuration, check the connections (Kafka, InfluxDB, checkpoint directory) and exit")
	cmd.Flags().BoolVar(&untilEnd, "until-end", false, "stop once every assigned partition reaches the end offset it had when assigned")
	cmd.Flags().StringVar(&timingOut, "timing-out", "", "write the first-assignment and last-commit times here (benchmarks)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile here")
	cmd.Flags().StringVar(&memProfile, "memprofile", "", "write a heap profile here on exit")
	_ = cmd.Flags().MarkHidden("timing-out")
	cmd.Flags().StringVar(&warmup, "warmup-from", "", "partitions without a checkpoint start at this time (RFC 3339 or -72h) instead of kafka.start: learn from history, then continue live")
	return cmd
}

// newLogger builds the process logger from [log].
func newLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}

// startOps serves /metrics, /healthz (the process runs) and /readyz
// (ready says whether it is doing its job, and if not why), and
// /debug/pprof/ if enabled, on http.listen; an empty address serves
// nothing. The returned func stops it.
func startOps(c config.HTTP, reg *prometheus.Registry, ready func() (bool, []string), log *slog.Logger, apiHandler http.Handler) (func(), error) {
	addr := c.Listen
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if apiHandler != nil {
		mux.Handle(api.Prefix, apiHandler)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready()
		if ok {
			fmt.Fprintln(w, "ready")
			return
		}
		http.Error(w, "not ready:\n"+strings.Join(why, "\n"), http.StatusServiceUnavailable)
	})
	if c.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on http.listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ops server", "err", err)
		}
	}()
	log.Info("serving /metrics /healthz /readyz", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/api"
)

func init() { registry = append(registry, newServeCmd) }

func newServeCmd() *cobra.Command {
	var f queryInfluxFlags
	var listen string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP JSON API over what tsrep wrote to InfluxDB: similar series, embeddings, forecasts, anomaly scores, series",
		Long: `Serve the HTTP JSON API on --listen, reading InfluxDB as the
configuration's [influx] section says (influx.query_language: InfluxQL by
default), with model.name as the model of requests that name none:

  GET /api/v1/similar?series=S[&k=10][&version=V][&at=T]
  GET /api/v1/embedding?series=S[&at=T][&version=V]
  GET /api/v1/forecast?series=S[&from=T1][&to=T2]
  GET /api/v1/anomaly?series=S[&from=T1][&to=T2][&min_score=X]
  GET /api/v1/series[?measurement=M][&field=F][&tag=K:V...][&limit=N]

and /healthz. Every endpoint also takes model=M. Percent-encode the
parameters (a series key holds '#'): curl -G --data-urlencode 'series=...'.
SIGINT/SIGTERM stop it after the requests in flight.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			log := newLogger(r.cfg.Log)
			mux := http.NewServeMux()
			mux.Handle(api.Prefix, api.Handler(r.q, api.Options{Model: r.model, Log: log, Timeout: timeout}))
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on --listen %s: %w", listen, err)
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: timeout + 10*time.Second}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			fmt.Fprintf(cmd.OutOrStdout(), "serving %s on http://%s (bucket %s, model %s, %s)\n", api.Prefix, ln.Addr(), r.q.Bucket(), r.model, r.q.Language())
			select {
			case err := <-done:
				return fmt.Errorf("serve: %w", err)
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
			defer cancel()
			err = srv.Shutdown(ctx)
			if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
				err = serr
			}
			return err
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9465", "address to serve the API on (keep it on loopback unless a proxy guards it)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "bound on the queries of one request")
	return cmd
}

package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tsrep/tsrep/pipeline"
)

// showProgress reports p against total messages until the returned func is
// called: a progress bar (messages, percent, ETA, points/s) on a terminal,
// a log line every 10 s otherwise.
func showProgress(what string, total int64, p *pipeline.Progress, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	t0 := time.Now()
	rate := func() float64 { return float64(p.Points.Load()) / max(time.Since(t0).Seconds(), 1e-9) }
	if term.IsTerminal(int(os.Stderr.Fd())) {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("msgs"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
		)
		go func() {
			defer close(finished)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					_ = bar.Set64(p.Messages.Load())
					_ = bar.Finish()
					fmt.Fprintln(os.Stderr)
					return
				case <-tick.C:
					bar.Describe(fmt.Sprintf("%s (%.0f points/s)", what, rate()))
					_ = bar.Set64(p.Messages.Load())
				}
			}
		}()
	} else {
		go func() {
			defer close(finished)
			tick := time.NewTicker(10 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					n := p.Messages.Load()
					pct, eta := 0.0, time.Duration(0)
					if total > 0 && n > 0 {
						pct = 100 * float64(n) / float64(total)
						eta = time.Duration(float64(time.Since(t0)) * float64(total-n) / float64(n)).Round(time.Second)
					}
					log.Info(what, "messages", n, "of", total, "percent", fmt.Sprintf("%.1f", pct),
						"points_per_s", fmt.Sprintf("%.0f", rate()), "eta", eta)
				}
			}
		}()
	}
	return func() { close(done); <-finished }
}

package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tsrep/tsrep/pipeline"
)

// showProgress reports p against total messages until the returned func is
// called: a progress bar (messages, percent, rates, ETA) on a terminal, a
// log line every 10 s otherwise.
func showProgress(what string, total int64, p *pipeline.Progress, log *slog.Logger) (stop func()) {
	v := progressView{what: what, total: total, p: p, t0: time.Now()}
	done := make(chan struct{})
	finished := make(chan struct{})
	if term.IsTerminal(int(os.Stderr.Fd())) {
		bar := v.newBar(os.Stderr)
		go func() {
			defer close(finished)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					v.frame(bar, time.Now(), true)
					fmt.Fprintln(os.Stderr)
					return
				case now := <-tick.C:
					v.frame(bar, now, false)
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
				case now := <-tick.C:
					n := p.Messages.Load()
					pct, eta := 0.0, time.Duration(0)
					if total > 0 && n > 0 {
						pct = 100 * float64(n) / float64(total)
						eta = time.Duration(float64(now.Sub(v.t0)) * float64(total-n) / float64(n)).Round(time.Second)
					}
					log.Info(what, "messages", n, "of", total, "percent", fmt.Sprintf("%.1f", pct),
						"points_per_s", fmt.Sprintf("%.0f", float64(p.Points.Load())/max(now.Sub(v.t0).Seconds(), 1e-9)), "eta", eta)
				}
			}
		}()
	}
	return func() { close(done); <-finished }
}

// minRateSpan is how long a progress bar runs before it shows rates: over
// a shorter span they are noise (the bar's own rates used to show
// "0 msgs/hr" on the first frame and billions per second on the last).
const minRateSpan = time.Second

// progressView computes what the progress bar shows. The rates and the ETA
// are its own, over the time since t0; the bar's library only draws the bar
// and the count.
type progressView struct {
	what  string
	total int64
	p     *pipeline.Progress
	t0    time.Time
}

func (v progressView) newBar(w io.Writer) *progressbar.ProgressBar {
	bar := progressbar.NewOptions64(max(v.total, 1),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(v.what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false), // label has the time left
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(0), // frame paces the frames
		progressbar.OptionFullWidth(),
	)
	_ = bar.RenderBlank()
	return bar
}

// frame draws the bar at now; done draws the last frame.
func (v progressView) frame(bar *progressbar.ProgressBar, now time.Time, done bool) {
	bar.Describe(v.label(now, done))
	n := v.p.Messages.Load()
	if done {
		_ = bar.Set64(max(v.total, 1)) // a replay that ends has read its range, whatever was counted
		return
	}
	_ = bar.Set64(min(n, max(v.total, 1)-1)) // the bar finishes once, on done
}

// label is the bar's description at now: what, and once minRateSpan has
// passed, messages and points per second and (until done) the time left.
func (v progressView) label(now time.Time, done bool) string {
	el := now.Sub(v.t0)
	n, pts := v.p.Messages.Load(), v.p.Points.Load()
	if el < minRateSpan || n == 0 {
		return v.what
	}
	rate := float64(n) / el.Seconds()
	s := fmt.Sprintf("%s (%.0f msgs/s, %.0f points/s", v.what, rate, float64(pts)/el.Seconds())
	if left := v.total - n; !done && left > 0 {
		s += fmt.Sprintf(", %s left", (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second))
	}
	return s + ")"
}

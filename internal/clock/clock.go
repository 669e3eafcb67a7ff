// Package clock is the wall clock the pipeline's timers run on, injected so
// that tests can move time by hand instead of sleeping (as Benthos injects
// the clock into its window buffers). Nothing derived from data reads it:
// windows and learning follow event time. It only paces flushes,
// checkpoints, idle detection and retries.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and makes tickers and timers.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Ticker delivers ticks every period until stopped.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the system clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// NewTicker implements Clock.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

// After implements Clock.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// Fake is a clock that moves only when Advance is called. Its tickers and
// timers fire (without blocking: a tick nobody takes is dropped, as
// time.Ticker drops them) when Advance passes their deadlines.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
}

type fakeWaiter struct {
	next   time.Time
	period time.Duration // 0: a one-shot timer
	ch     chan time.Time
	done   bool
}

// NewFake returns a fake clock at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker implements Clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker period")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{next: f.now.Add(d), period: d, ch: make(chan time.Time, 1)}
	f.waiters = append(f.waiters, w)
	return fakeTicker{f, w}
}

// After implements Clock.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{next: f.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- f.now
		w.done = true
		return w.ch
	}
	f.waiters = append(f.waiters, w)
	return w.ch
}

// Advance moves the clock by d, firing what falls due on the way.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	live := f.waiters[:0]
	for _, w := range f.waiters {
		for !w.done && !w.next.After(f.now) {
			select {
			case w.ch <- w.next:
			default:
			}
			if w.period == 0 {
				w.done = true
			} else {
				w.next = w.next.Add(w.period)
			}
		}
		if !w.done {
			live = append(live, w)
		}
	}
	clear(f.waiters[len(live):])
	f.waiters = live
}

// BlockUntil waits until at least n tickers and timers are pending, so a
// test can advance the clock knowing the code under test has armed them
// (clockwork's BlockUntil).
func (f *Fake) BlockUntil(n int) {
	for {
		f.mu.Lock()
		k := 0
		for _, w := range f.waiters {
			if !w.done {
				k++
			}
		}
		f.mu.Unlock()
		if k >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

type fakeTicker struct {
	f *Fake
	w *fakeWaiter
}

func (t fakeTicker) C() <-chan time.Time { return t.w.ch }

func (t fakeTicker) Stop() {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.w.done = true
}

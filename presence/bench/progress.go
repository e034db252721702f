package bench

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// progress writes progress lines: one per phase, and one a second while a
// long phase runs.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	start    time.Time
	scenario string
}

// in sets the scenario that prefixes the lines ("" for none).
func (p *progress) in(scenario string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scenario = scenario
}

// printf writes one line, prefixed by the run's elapsed time and the
// scenario.
func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix := fmt.Sprintf("bench %6.1fs", time.Since(p.start).Seconds())
	if p.scenario != "" {
		prefix += " " + p.scenario
	}
	fmt.Fprintf(p.w, prefix+": "+format+"\n", args...)
}

// every writes the line status returns once a second until the returned
// function is called.
func (p *progress) every(status func() string) (stop func()) {
	tick := time.NewTicker(time.Second)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				p.printf("%s", status())
			}
		}
	}()
	return func() { tick.Stop(); close(quit); <-done }
}

// counting returns a status line "<what>: n/total (x%), r/s" for every,
// reading n from count.
func counting(what string, total int64, count func() int64) func() string {
	start, last, lastAt := time.Now(), int64(0), time.Now()
	return func() string {
		n, now := count(), time.Now()
		r := float64(n-last) / now.Sub(lastAt).Seconds()
		last, lastAt = n, now
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(n) / float64(total)
		}
		return fmt.Sprintf("%s: %d/%d (%.0f%%), %.0f/s now, %.0fs in", what, n, total, pct, r, now.Sub(start).Seconds())
	}
}

// Latency summarizes the latencies of one side, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// summarize returns the percentiles of samples (nil when there are none),
// sorting them.
func summarize(samples []time.Duration) *Latency {
	if len(samples) == 0 {
		return nil
	}
	slices.Sort(samples)
	return &Latency{
		Count: len(samples),
		P50:   ms(percentile(samples, 0.50)),
		P90:   ms(percentile(samples, 0.90)),
		P99:   ms(percentile(samples, 0.99)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// percentile returns the q-quantile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// perSecond is n per second of elapsed.
func perSecond(n int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(n) / elapsed.Seconds()
}

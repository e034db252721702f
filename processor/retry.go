package processor

import (
	"context"
	"time"
)

// backoff paces the attempts of something that failed: the first wait is
// firstBackoff, each next one factor times longer (2 unless set), up to
// maxBackoff. The zero backoff is ready to use.
type backoff struct {
	next   time.Duration
	factor time.Duration
}

const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// delay returns how long the next wait is.
func (b *backoff) delay() time.Duration {
	if b.next == 0 {
		b.next = firstBackoff
	}
	return b.next
}

// wait waits the next delay and lengthens the one after; false when ctx
// ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.delay())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	b.advance()
	return true
}

// advance lengthens the next delay.
func (b *backoff) advance() {
	b.next = min(b.delay()*max(b.factor, 2), maxBackoff)
}

// retry runs fn until it succeeds or ctx ends, with backoff, counting and
// logging each failure. An attempt under way when ctx ends is given a few
// seconds to finish.
func (p *Processor) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	var b backoff
	for {
		attempt, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := fn(attempt)
		cancel()
		if err == nil {
			return nil
		}
		p.metrics.applyErrors.Inc()
		p.log.Warn(what+" failed; retrying", "backoff", b.delay(), "err", err)
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}

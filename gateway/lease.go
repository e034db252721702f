package gateway

import (
	"context"
	"time"
)

// KeepLease renews the gateway's lease at once, then every third of the
// lease, until ctx ends; then it returns nil. A gateway that holds sessions
// runs it for as long as it serves, so that the processor never takes them
// for those of a lost gateway. A heartbeat that fails is passed to onError
// (nil: ignored) and tried again at the next tick, so two more chances
// remain before the lease lapses.
func (p *Publisher) KeepLease(ctx context.Context, onError func(error)) error {
	every := max(p.cfg.lease/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, every)
		err := p.Heartbeat(hctx)
		cancel()
		if err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

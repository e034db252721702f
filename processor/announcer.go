package processor

import (
	"context"
	"sync"
)

// announcer runs the announcements of the partitions applied side by side
// together, as a database commits a group: a caller's subjects join the
// batch that is gathering; its first caller waits for the batch under
// way, if any, to end, then announces every subject gathered meanwhile in
// one go (one read of the audiences, one of their sessions, one produce,
// one mark) while the next batch gathers. An idle processor announces at
// once; a busy one announces many partitions' changes for the round trips
// of one. Every caller waits for its own batch to be told and marked, so
// a partition's changes are announced in order, as before. The zero
// announcer is ready to use.
type announcer struct {
	// turn is held by the batch being announced.
	turn sync.Mutex
	mu   sync.Mutex
	// gathering is the batch that takes new subjects; nil when none.
	gathering *announcement
}

// announcement is one batch of subjects, and how announcing it ended.
type announcement struct {
	subjects []subject
	done     chan struct{}
	err      error
}

// announce has subjects told with tell, along with those of other callers,
// and returns when they are told, or tell failed for them.
func (a *announcer) announce(ctx context.Context, subjects []subject, tell func(context.Context, []subject) error) error {
	if len(subjects) == 0 {
		return nil
	}
	a.mu.Lock()
	b, first := a.gathering, a.gathering == nil
	if first {
		b = &announcement{done: make(chan struct{})}
		a.gathering = b
	}
	b.subjects = append(b.subjects, subjects...)
	a.mu.Unlock()
	if !first {
		<-b.done
		return b.err
	}
	a.turn.Lock()
	a.mu.Lock()
	a.gathering = nil // later callers gather the next batch
	a.mu.Unlock()
	b.err = tell(ctx, b.subjects)
	a.turn.Unlock()
	close(b.done)
	return b.err
}

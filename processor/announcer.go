package processor

import (
	"context"
	"sync"
)

// announcer runs the announcements of the partitions applied side by side
// together, as a database commits a group: a caller's subjects join the
// batch that is gathering; its first caller waits for the batch under
// way, if any, to end, and for every partition still being applied (see
// begin) to join or end, then announces every subject gathered in one go
// (one read of the audiences, one of their sessions, one produce, one
// mark) while the next batch gathers. A busy processor so announces the
// changes of all the partitions of a fetch for the round trips of one.
// Every caller waits for its own batch to be told and marked, so a
// partition's changes are announced in order, as before. The zero
// announcer is ready to use.
type announcer struct {
	// turn is held by the batch being announced.
	turn sync.Mutex
	mu   sync.Mutex
	// changed is signalled when active falls or a batch gains a caller.
	changed *sync.Cond
	// active counts the partitions being applied (see begin).
	active int
	// gathering is the batch that takes new subjects; nil when none.
	gathering *announcement
}

// announcement is one batch of subjects, and how announcing it ended.
type announcement struct {
	subjects []subject
	callers  int
	done     chan struct{}
	err      error
}

// begin says a partition is being applied, whose changes the gathering
// batch waits for until the returned end is called.
func (a *announcer) begin() (end func()) {
	a.mu.Lock()
	a.active++
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		a.active--
		a.signal()
		a.mu.Unlock()
	}
}

// signal wakes a first caller waiting for the others; a.mu is held.
func (a *announcer) signal() {
	if a.changed != nil {
		a.changed.Broadcast()
	}
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
	b.callers++
	a.signal()
	a.mu.Unlock()
	if !first {
		<-b.done
		return b.err
	}
	a.turn.Lock()
	a.mu.Lock()
	if a.changed == nil {
		a.changed = sync.NewCond(&a.mu)
	}
	// Every partition being applied is either in this batch or will
	// join it or end soon: their Redis round trips are shorter than an
	// announcement's.
	for a.active > b.callers {
		a.changed.Wait()
	}
	a.gathering = nil // later callers gather the next batch
	a.mu.Unlock()
	b.err = tell(ctx, b.subjects)
	a.turn.Unlock()
	close(b.done)
	return b.err
}

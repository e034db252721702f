package processor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/presence-im/presence/redisstore"
)

// Callers that arrive while a batch is being announced go together in
// the next one; each returns once its own batch is told, with its error.
func TestAnnouncerGathersWhileABatchIsUnderWay(t *testing.T) {
	var a announcer
	var mu sync.Mutex
	var batches [][]string
	told := map[string]bool{}
	started, release := make(chan struct{}), make(chan struct{})
	failed := errors.New("kafka down")
	tell := func(_ context.Context, subjects []subject) error {
		var users []string
		for _, s := range subjects {
			users = append(users, s.User.User)
		}
		slices.Sort(users)
		mu.Lock()
		batches = append(batches, users)
		first := len(batches) == 1
		mu.Unlock()
		if first {
			close(started)
			<-release
			mu.Lock()
			told[users[0]] = true
			mu.Unlock()
			return nil
		}
		return failed
	}
	one := func(user string) []subject { return []subject{{User: redisstore.User{App: "chat", User: user}}} }

	first := make(chan error)
	go func() {
		err := a.announce(context.Background(), one("ann"), tell)
		mu.Lock()
		if !told["ann"] {
			err = fmt.Errorf("returned before its batch was told: %w", err)
		}
		mu.Unlock()
		first <- err
	}()
	<-started
	later := make(chan error, 3)
	for _, u := range []string{"bob", "cid", "dan"} {
		go func() { later <- a.announce(context.Background(), one(u), tell) }()
	}
	// Wait until all three have joined the gathering batch.
	for gathered := 0; gathered < 3; runtime.Gosched() {
		a.mu.Lock()
		if a.gathering != nil {
			gathered = len(a.gathering.subjects)
		}
		a.mu.Unlock()
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	for range 3 {
		if err := <-later; !errors.Is(err, failed) {
			t.Errorf("a caller of the failed batch got %v, want %v", err, failed)
		}
	}
	want := [][]string{{"ann"}, {"bob", "cid", "dan"}}
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
	// Nothing under way: a caller announces at once, alone.
	if err := a.announce(context.Background(), one("eve"), func(_ context.Context, s []subject) error {
		if len(s) != 1 {
			return fmt.Errorf("%d subjects", len(s))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A batch waits for the partitions still being applied to join it, so
// that the partitions of one fetch are announced together.
func TestAnnouncerWaitsForPartitionsBeingApplied(t *testing.T) {
	var a announcer
	var mu sync.Mutex
	var batches [][]string
	tell := func(_ context.Context, subjects []subject) error {
		var users []string
		for _, s := range subjects {
			users = append(users, s.User.User)
		}
		slices.Sort(users)
		mu.Lock()
		batches = append(batches, users)
		mu.Unlock()
		return nil
	}
	one := func(user string) []subject { return []subject{{User: redisstore.User{App: "chat", User: user}}} }
	endAnn, endBob := a.begin(), a.begin()
	first := make(chan error)
	go func() {
		defer endAnn()
		first <- a.announce(context.Background(), one("ann"), tell)
	}()
	// Wait until ann's batch gathers (or, wrongly, was told alone).
	for gathering := false; !gathering; runtime.Gosched() {
		a.mu.Lock()
		mu.Lock()
		gathering = a.gathering != nil && a.gathering.callers == 1 || len(batches) > 0
		mu.Unlock()
		a.mu.Unlock()
	}
	if err := a.announce(context.Background(), one("bob"), tell); err != nil {
		t.Fatal(err)
	}
	endBob()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"ann", "bob"}}; !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
	// A partition that ends with nothing to announce is not waited for.
	endCid := a.begin()
	done := make(chan error)
	go func() { done <- a.announce(context.Background(), one("dan"), tell) }()
	endCid()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

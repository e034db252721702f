package processor

import (
	"context"
	"testing"
	"time"
)

// A backoff waits 100 ms, then twice (or factor times) as long each time,
// at most 5 s, and stops waiting when its context ends.
func TestBackoff(t *testing.T) {
	var b backoff
	var got []time.Duration
	for range 8 {
		got = append(got, b.delay())
		b.advance() // as wait does once it has waited
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	quick := backoff{factor: 4}
	if !quick.wait(context.Background()) || quick.delay() != 400*time.Millisecond {
		t.Fatalf("after one wait with factor 4: next delay %v, want 400ms", quick.delay())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if quick.wait(ctx) {
		t.Fatal("a wait whose context has ended says it waited")
	}
}

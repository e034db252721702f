package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"time"
)

//go:embed reserve.lua
var reserveSource string

// P:{U}:r, sorted set: the subscriptions subscriber U was admitted to by
// ReserveSubscriptions, scored by expiry (Unix ms), until they expire or
// are released. They count towards U's cap before the processor has
// applied them to P:{U}:s.

func (s *Store) reservedKey(app, subscriber string) string { return s.userKey(app, subscriber) + ":r" }

// Reservation is the answer of ReserveSubscriptions.
type Reservation struct {
	// Live is how many subscriptions the subscriber had, reserved or
	// applied, before the request; Added how many of the request's users
	// were not among them.
	Live, Added int
	// Admitted says the request fits the cap: its users are reserved
	// until the expiry. When false, nothing was written.
	Admitted bool
}

// ReserveSubscriptions admits subscriber's subscriptions to watched
// (distinct users) until expires when, with the live ones, they number at
// most limit, and reserves them; it is atomic (reserve.lua), so requests
// racing each other, on any number of query APIs, never take a subscriber
// past its cap. A reservation lasts until its expiry or
// ReleaseSubscriptions, even when the records it was for never reach
// Kafka: a client that retries renews it rather than counting it twice.
func (s *Store) ReserveSubscriptions(ctx context.Context, app, subscriber string, watched []string, limit int, expires, now time.Time) (Reservation, error) {
	keys := []string{s.reservedKey(app, subscriber), s.watchingKey(app, subscriber)}
	args := make([]any, 0, 3+len(watched))
	args = append(args, now.UnixMilli(), limit, expires.UnixMilli())
	for _, u := range watched {
		args = append(args, u)
	}
	vals, err := s.reserve.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return Reservation{}, fmt.Errorf("reserving %d subscriptions of %q: %w", len(watched), subscriber, err)
	}
	if len(vals) != 3 {
		return Reservation{}, fmt.Errorf("reserving subscriptions of %q: the script answered %v", subscriber, vals)
	}
	return Reservation{Live: int(vals[0]), Added: int(vals[1]), Admitted: vals[2] == 1}, nil
}

// ReleaseSubscriptions ends subscriber's reservations of watched, once
// their tombstones are in Kafka. Each still counts towards the cap until
// the processor has applied its tombstone.
func (s *Store) ReleaseSubscriptions(ctx context.Context, app, subscriber string, watched []string) error {
	members := make([]any, len(watched))
	for i, u := range watched {
		members[i] = u
	}
	key := s.reservedKey(app, subscriber)
	if err := s.rdb.ZRem(ctx, key, members...).Err(); err != nil {
		return fmt.Errorf("releasing %d subscriptions of %q: %w", len(watched), subscriber, err)
	}
	return nil
}

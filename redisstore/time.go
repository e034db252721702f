package redisstore

import (
	"time"

	"github.com/presence-im/presence/schemas/status"
)

// Time is a time that reads in JSON as RFC 3339 in UTC with exactly three
// fractional digits (package schemas/status).
type Time = status.Time

func millis(ms int64) Time { return Time{Time: time.UnixMilli(ms).UTC()} }

package redisstore

import "time"

// Time is a time that reads in JSON as RFC 3339 in UTC with exactly three
// fractional digits ("2026-11-22T17:45:20.850Z"), the precision Presence
// keeps, for parsers that want a fixed width.
type Time struct{ time.Time }

const millisLayout = "2006-01-02T15:04:05.000Z07:00"

func millis(ms int64) Time { return Time{time.UnixMilli(ms).UTC()} }

// MarshalJSON writes t as a quoted RFC 3339 string with milliseconds.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(millisLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, millisLayout)
	return append(b, '"'), nil
}

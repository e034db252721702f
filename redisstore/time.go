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
	return t.AppendJSON(make([]byte, 0, len(millisLayout)+2)), nil
}

// AppendJSON appends t to b as MarshalJSON writes it.
func (t Time) AppendJSON(b []byte) []byte {
	b = append(b, '"')
	b = t.appendText(b)
	return append(b, '"')
}

// appendText appends t in millisLayout, in UTC. It writes the digits
// itself, which is several times faster than time.Time.AppendFormat, and
// leaves the years that layout does not write in four digits to it.
func (t Time) appendText(b []byte) []byte {
	u := t.UTC()
	year, month, day := u.Date()
	if year < 0 || year > 9999 {
		return u.AppendFormat(b, millisLayout)
	}
	hour, minute, second := u.Clock()
	ms := u.Nanosecond() / 1e6
	b = append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+second/10), byte('0'+second%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}

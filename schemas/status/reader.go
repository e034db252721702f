package status

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// JSONReader reads statuses in the form AppendJSON writes them, for a Go
// client of the query API: encoding/json took a client longer to decode
// an answer of 500 statuses than the query API took to make it. The
// statuses it reads share their memory, a few chunks that grow as they
// fill (never moved, so no status read is copied), and their strings
// are parts of the string read; each status's sessions end with its
// slice's capacity, so appending to them never writes into another's.
// Anything not in that exact form (other spacing or order of fields, an
// unknown field, an escape in a string, a number or time written
// otherwise) it leaves to encoding/json, which decodes it or says what
// is wrong with it; what it reads, it reads as encoding/json does. The
// zero value is ready.
type JSONReader struct {
	statuses []Status
	sessions []Session
	lastSeen []Time
}

// Read reads a status, or null (a nil status), at the start of s and
// returns what follows it; ok is false when s does not start with one in
// the form AppendJSON writes.
func (r *JSONReader) Read(s string) (st *Status, rest string, ok bool) {
	if rest, ok := strings.CutPrefix(s, "null"); ok {
		return nil, rest, true
	}
	p := jsonScan{s: s, ok: true}
	var v Status
	p.lit(`{"user":`)
	v.User = p.str()
	p.lit(`,"state":`)
	v.State = p.str()
	p.lit(`,"sessions":`)
	r.sessions = room(r.sessions, 0)
	start := len(r.sessions)
	switch {
	case p.skip("null"):
	case p.skip("[]"):
		v.Sessions = r.sessions[start:start:start]
	default:
		p.lit("[")
		for p.ok {
			var sess Session
			p.lit(`{"session":`)
			sess.Session = p.str()
			p.lit(`,"device":`)
			sess.Device = p.str()
			p.lit(`,"device_id":`)
			sess.DeviceID = p.str()
			p.lit(`,"gateway":`)
			sess.Gateway = p.str()
			p.lit(`,"connected_at":`)
			sess.ConnectedAt = p.time()
			p.lit(`,"activity":`)
			sess.Activity = p.activity()
			p.lit("}")
			if len(r.sessions) == cap(r.sessions) { // the status's sessions so far move to the next chunk
				r.sessions = append(room(r.sessions, len(r.sessions)-start), r.sessions[start:]...)
				start = 0
			}
			r.sessions = append(r.sessions, sess)
			if !p.skip(",") {
				break
			}
		}
		p.lit("]")
		v.Sessions = r.sessions[start:len(r.sessions):len(r.sessions)]
	}
	p.lit(`,"custom":`)
	if !p.skip("null") {
		var c Custom
		p.lit(`{"status":`)
		c.Status = int(p.int(strconv.IntSize))
		p.lit(`,"text":`)
		c.Text = p.str()
		p.lit("}")
		v.Custom = &c
	}
	p.lit(`,"last_seen":`)
	if !p.skip("null") {
		r.lastSeen = room(r.lastSeen, 0)
		r.lastSeen = append(r.lastSeen, p.time())
		v.LastSeen = &r.lastSeen[len(r.lastSeen)-1]
	}
	p.lit(`,"version":`)
	v.Version = p.int(64)
	p.lit(`,"activity":`)
	v.Activity = p.activity()
	p.lit("}")
	if !p.ok {
		r.sessions = r.sessions[:start]
		return nil, s, false
	}
	r.statuses = room(r.statuses, 0)
	r.statuses = append(r.statuses, v)
	return &r.statuses[len(r.statuses)-1], p.s, true
}

// room returns chunk when it has room for one more element, else a new,
// empty chunk twice as large with room for more besides.
func room[T any](chunk []T, more int) []T {
	if len(chunk) < cap(chunk) {
		return chunk
	}
	return make([]T, 0, max(16, 2*cap(chunk), 2*more))
}

// jsonScan reads JSON in one exact form from the start of s; ok turns
// false, for good, at the first byte not in that form.
type jsonScan struct {
	s  string
	ok bool
}

// activity reads an activity AppendJSON writes: one it knows, or null.
func (p *jsonScan) activity() Activity {
	switch {
	case p.skip(`"active"`):
		return Active
	case p.skip(`"idle"`):
		return Idle
	case p.skip(`"background"`):
		return Background
	case !p.skip("null"):
		p.ok = false
	}
	return ""
}

// lit reads the literal l.
func (p *jsonScan) lit(l string) {
	if !p.skip(l) {
		p.ok = false
	}
}

// skip reads the literal l if s starts with it, and says whether it did.
func (p *jsonScan) skip(l string) bool {
	if !p.ok || !strings.HasPrefix(p.s, l) {
		return false
	}
	p.s = p.s[len(l):]
	return true
}

// str reads a string of valid UTF-8 without escapes or control
// characters: what encoding/json decodes it to is its bytes.
func (p *jsonScan) str() string {
	if !p.ok || p.s == "" || p.s[0] != '"' {
		p.ok = false
		return ""
	}
	ascii := true
	for i := 1; i < len(p.s); i++ {
		c := p.s[i]
		if c == '"' {
			v := p.s[1:i]
			if !ascii && !utf8.ValidString(v) {
				break
			}
			p.s = p.s[i+1:]
			return v
		}
		if c == '\\' || c < 0x20 {
			break
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	p.ok = false
	return ""
}

// int reads an integer that fits in bits, written as JSON writes one.
func (p *jsonScan) int(bits int) int64 {
	i := 0
	if i < len(p.s) && p.s[i] == '-' {
		i++
	}
	digits := i
	for i < len(p.s) && p.s[i] >= '0' && p.s[i] <= '9' {
		i++
	}
	if !p.ok || i == digits || (p.s[digits] == '0' && i > digits+1) {
		p.ok = false
		return 0
	}
	n, err := strconv.ParseInt(p.s[:i], 10, bits)
	if err != nil {
		p.ok = false
		return 0
	}
	p.s = p.s[i:]
	return n
}

// time reads a Time as AppendJSON writes it, "2026-11-22T17:45:20.850Z":
// the time encoding/json decodes it to (time.Time's parsing of RFC 3339,
// which for a time in UTC is time.Date in time.UTC).
func (p *jsonScan) time() Time {
	const n = len(`"2006-01-02T15:04:05.000Z"`)
	if !p.ok || len(p.s) < n || p.s[0] != '"' || p.s[n-1] != '"' {
		p.ok = false
		return Time{}
	}
	s := p.s[1 : n-1]
	digits := true
	num := func(from, to int) int {
		v := 0
		for i := from; i < to; i++ {
			c := s[i]
			digits = digits && c >= '0' && c <= '9'
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), time.Month(num(5, 7)), num(8, 10)
	hour, minute, second, ms := num(11, 13), num(14, 16), num(17, 19), num(20, 23)
	if !digits || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' ||
		month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59 {
		p.ok = false
		return Time{}
	}
	t := time.Date(year, month, day, hour, minute, second, ms*int(time.Millisecond), time.UTC)
	if t.Day() != day { // the 31st of a month of 30 days, say
		p.ok = false
		return Time{}
	}
	p.s = p.s[n:]
	return Time{Time: t}
}

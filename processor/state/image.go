package state

import (
	"slices"
	"strconv"
	"time"

	"github.com/presence-im/presence/redisstore"
)

// The image of a user is the whole Redis hash the query API reads, in
// redisstore's layout (see redisstore/store.go and apply.lua):
//
//	"v"          the version, decimal
//	"s<session>" per live session: device, device id, gateway, connected
//	             at (Unix ms, decimal) and epoch, joined by sep, then sep
//	             and the activity's code when not active (activity.go)
//	"c"          the custom status: its code, decimal, sep, its text
//	"l"          last seen (Unix ms, decimal), while offline after a
//	             disconnect
//	"p"          the privacy setting, when not the default
//	             (status.Privacy.Encode)
//
// and the key's expiry. apply.lua's "a" field (what was announced) is not
// part of it: that is the processor's to keep now, in memory. These
// encodings repeat redisstore's unexported encodeSession, encodeCustom
// and sessionField; the differential test proves them byte-identical.
// Once redisstore exports them (with decodeStatus, as DecodeStatus), this
// file should call them instead.

// sep separates the parts of a session's or custom status's value; no
// valid id contains it.
const sep = '\x1f'

// Image is what a writer writes blindly to a user's key.
type Image struct {
	User redisstore.User
	// Gone says the key must be deleted: the user is forgotten.
	Gone bool
	// Fields holds the whole hash, field then value. With Whole the
	// writer replaces the hash with it (DEL then HSET, in one
	// transaction so that no reader sees the user missing between
	// them); without, it sets them and deletes Removed: the user was
	// online (its key without expiry) since it was last written.
	Fields  []string
	Removed []string
	Whole   bool
	// ExpireAt is when the key expires (PEXPIREAT), while the user has
	// no live session; zero when it must persist (a new key does).
	ExpireAt time.Time
}

// TakeDirty returns the image of each user changed since the last call,
// sorted by user key, and forgets that they changed. Users forgotten
// since are Gone. A user changed many times is written once.
func (p *Partition) TakeDirty() []Image {
	if len(p.dirty) == 0 {
		return nil
	}
	now := p.now().UnixMilli()
	keys := make([]string, 0, len(p.dirty))
	for k := range p.dirty {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Image, len(keys))
	for i, k := range keys {
		d := p.dirty[k]
		out[i].User, out[i].Whole = d.User, d.whole
		u := p.lookup(k, now)
		if u == nil {
			out[i].Gone, out[i].Whole = true, true
			continue
		}
		out[i].Fields = u.fields()
		if pv, ok := p.privacyOf(u); ok {
			out[i].Fields = append(out[i].Fields, "p", pv.Encode())
		}
		for _, f := range d.removed {
			if !hasField(out[i].Fields, f) { // not set again since
				out[i].Removed = append(out[i].Removed, f)
			}
		}
		if len(u.sessions) == 0 {
			out[i].ExpireAt = millis(u.expireAt)
		}
	}
	p.resetDirty()
	return out
}

// dirtyUser is a user changed since the last TakeDirty: whole when its
// image must replace its hash (it was new, or offline, when first
// changed: Redis may have let its key expire), else the fields removed
// since.
type dirtyUser struct {
	redisstore.User
	whole   bool
	removed []string
}

// keptDirty is the most users changed between two writes whose map is
// emptied and kept for the next ones, rather than dropped: a live batch's
// (at most a chunk of records) is kept, so that each batch does not grow
// a map anew; a rebuild's, which may hold a whole partition, is dropped.
const keptDirty = 4096

// resetDirty forgets which users changed.
func (p *Partition) resetDirty() {
	if len(p.dirty) <= keptDirty {
		clear(p.dirty)
	} else {
		p.dirty = map[string]dirtyUser{}
	}
}

// Dirty returns how many users changed since the last TakeDirty.
func (p *Partition) Dirty() int { return len(p.dirty) }

// hasField says whether pairs (field then value) hold field.
func hasField(pairs []string, field string) bool {
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i] == field {
			return true
		}
	}
	return false
}

// fields returns the user's hash, field then value.
func (u *user) fields() []string {
	f := make([]string, 0, 2*(len(u.sessions)+3))
	f = append(f, "v", strconv.FormatInt(u.version, 10))
	for i := range u.sessions {
		s := &u.sessions[i]
		f = append(f, "s"+s.id(), s.encode())
	}
	if u.custom != nil {
		f = append(f, "c", *u.custom)
	}
	if u.flags&seen != 0 {
		f = append(f, "l", strconv.FormatInt(u.lastSeen, 10))
	}
	return f
}

// encode is the session's value in the hash.
func (s *session) encode() string {
	h := s.host.Value()
	b := make([]byte, 0, 64)
	b = append(b, s.device.Value()...)
	b = append(b, sep)
	b = append(b, s.deviceID()...)
	b = append(b, sep)
	b = append(b, h.gateway...)
	b = append(b, sep)
	b = strconv.AppendInt(b, s.at, 10)
	b = append(b, sep)
	b = append(b, h.epoch...)
	if s.activity != 0 {
		b = append(b, sep, s.activity)
	}
	return string(b)
}

// encodeCustom is a custom status's value in the hash.
func encodeCustom(c redisstore.Custom) string {
	return strconv.Itoa(c.Status) + string(sep) + c.Text
}

// millis is a Unix millisecond time in UTC, as redisstore decodes it.
func millis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

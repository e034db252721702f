package watch

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// A Cursor is where a watch has read presence.changes up to: the next
// offset of each partition, and the generation of the state in Redis it
// was taken with (redisstore.Store.Generation), so that a cursor taken
// before a rebuild, whose history is never announced, is known stale.
// Clients hold it as an opaque string (Encode); any query API serves it.
type Cursor struct {
	Generation string
	Next       []int64
}

// cursorVersion is the first byte of an encoded cursor.
const cursorVersion = 1

// maxPartitions bounds the partitions a cursor may name, and so the work
// a hostile one causes.
const maxPartitions = 10_000

// maxGeneration bounds the generation a cursor may carry.
const maxGeneration = 64

// ErrBadCursor is returned for a string that is no cursor.
var ErrBadCursor = errors.New("not a cursor")

// Encode returns the cursor as clients hold it: URL-safe base64 of a
// version byte, the generation's length and bytes, the partition count
// and each partition's next offset, as unsigned varints.
func (c Cursor) Encode() string {
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, uint64(len(c.Generation)))
	b = append(b, c.Generation...)
	b = binary.AppendUvarint(b, uint64(len(c.Next)))
	for _, n := range c.Next {
		b = binary.AppendUvarint(b, uint64(n))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor reads a cursor that Encode wrote.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || b[0] != cursorVersion {
		return Cursor{}, ErrBadCursor
	}
	b = b[1:]
	uvarint := func(limit uint64) (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > limit {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	glen, ok := uvarint(maxGeneration)
	if !ok || uint64(len(b)) < glen {
		return Cursor{}, ErrBadCursor
	}
	c := Cursor{Generation: string(b[:glen])}
	b = b[glen:]
	n, ok := uvarint(maxPartitions)
	if !ok || n == 0 {
		return Cursor{}, ErrBadCursor
	}
	c.Next = make([]int64, n)
	for i := range c.Next {
		v, ok := uvarint(1<<63 - 1)
		if !ok {
			return Cursor{}, ErrBadCursor
		}
		c.Next[i] = int64(v)
	}
	if len(b) != 0 {
		return Cursor{}, fmt.Errorf("%w: %d bytes after its end", ErrBadCursor, len(b))
	}
	return c, nil
}

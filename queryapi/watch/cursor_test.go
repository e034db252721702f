package watch

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{Generation: "", Next: []int64{0}},
		{Generation: "Y2QZ3KQPOM7Q4XJS", Next: []int64{0, 1, 1 << 40, 1<<63 - 1}},
	} {
		s := c.Encode()
		if strings.ContainsAny(s, `"\+/=`) {
			t.Errorf("cursor %q needs escaping in JSON or a URL", s)
		}
		got, err := ParseCursor(s)
		if err != nil || got.Generation != c.Generation || !slices.Equal(got.Next, c.Next) {
			t.Errorf("%+v: encoded %q, parsed %+v, %v", c, s, got, err)
		}
	}
	for _, s := range []string{"", "AA", "not a cursor!", Cursor{Next: []int64{1}}.Encode() + "AA",
		// A generation longer than its bytes; no partitions; too many.
		"AQVhYg", "AQAA", "AQCRzgA"} {
		if _, err := ParseCursor(s); !errors.Is(err, ErrBadCursor) {
			t.Errorf("ParseCursor(%q) = %v, want ErrBadCursor", s, err)
		}
	}
}

// FuzzParseCursor checks that any string either is refused or is a
// cursor that encodes back to itself.
func FuzzParseCursor(f *testing.F) {
	f.Add(Cursor{Generation: "g", Next: []int64{1, 2, 3}}.Encode())
	f.Add("AQAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		if len(c.Next) == 0 || len(c.Next) > maxPartitions || len(c.Generation) > maxGeneration {
			t.Fatalf("%q parsed to %d partitions, a generation of %d bytes", s, len(c.Next), len(c.Generation))
		}
		if again, err := ParseCursor(c.Encode()); err != nil || !slices.Equal(again.Next, c.Next) || again.Generation != c.Generation {
			t.Fatalf("%q: %+v does not survive encoding: %+v, %v", s, c, again, err)
		}
	})
}

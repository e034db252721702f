package friendimport

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strings"
	"testing"

	"github.com/presence-im/presence/schemas"
)

// Whatever the file holds, Read never panics; a list it accepts holds
// only friendships the query API would accept, as many as its lines less
// the header, each read back by each as encoding/csv reads it; a list it
// refuses names a line. `go test` runs the seeds; `make fuzz` explores.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"user,friend\nalice,bob\n\"a,b\",alice\ncarol,dave\n",
		"\uFEFFuser,friend\r\nalice,bob\r\n",
		"alice,bob",
		"user,friend\n",
		"alice,alice\n",
		"alice, bob\n",
		"alice,bob,carol\n",
		"\"alice,bob\n",
		"a\"b,c\n",
		"alice,\n",
		"p%q,r\n",
		"a/b%c,\"d\"\"e\"\n",
		"bad \xff utf-8,bob\n",
		"tab\there,bob\n",
		"# comment,x\n",
		"alice,bob\n\n\ncarol,dave\n",
		strings.Repeat("x", 1<<20) + ",bob\n", // a 1 MB id
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Read(bytes.NewReader(data), "chat")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.Contains(err.Error(), "no friendship") {
				t.Fatalf("list %q refused without naming a line: %v", data, err)
			}
			return
		}
		cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\uFEFF"))))
		cr.FieldsPerRecord = 2
		records, err := cr.ReadAll()
		if err != nil {
			t.Fatalf("accepted list %q that encoding/csv refuses: %v", data, err)
		}
		if len(records) > 0 && records[0][0] == "user" && records[0][1] == "friend" {
			records = records[1:]
		}
		if in.Edges() != len(records) || in.Edges() == 0 {
			t.Fatalf("list %q: %d edges, encoding/csv reads %d", data, in.Edges(), len(records))
		}
		i := 0
		err = in.each(func(_ int, user, friend string) error {
			if user != records[i][0] || friend != records[i][1] {
				return errors.New("not what encoding/csv reads")
			}
			i++
			if user == friend || strings.TrimSpace(user) != user || strings.TrimSpace(friend) != friend {
				return errors.New("a friendship the query API would refuse")
			}
			return errors.Join(schemas.ValidateID("user", user), schemas.ValidateID("friend", friend))
		})
		if err != nil || i != len(records) {
			t.Fatalf("list %q: edge %d: %v", data, i, err)
		}
	})
}

package queryapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeStd decodes body as httpapi.DecodeJSON does without a fast path.
func decodeStd(body []byte) (queryRequest, error) {
	var q queryRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return q, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return q, errors.New("more than one value")
	}
	return q, nil
}

// checkFast checks that the fast decoding of body, when it takes it,
// reads what encoding/json reads, and that it leaves the request alone
// when it does not; it reports whether it took it.
func checkFast(t *testing.T, body []byte) bool {
	t.Helper()
	q := queryRequest{Users: []string{"untouched"}}
	if !q.DecodeFastJSON(body) {
		if len(q.Users) != 1 || q.Users[0] != "untouched" {
			t.Fatalf("%q: refused, but changed the request to %q", body, q.Users)
		}
		return false
	}
	want, err := decodeStd(body)
	if err != nil {
		t.Fatalf("%q: decoded to %q, encoding/json refuses it: %v", body, q.Users, err)
	}
	if !reflect.DeepEqual(q, want) {
		t.Fatalf("%q: decoded to %#v, encoding/json to %#v", body, q.Users, want.Users)
	}
	return true
}

// The form clients send decodes without encoding/json, to what
// encoding/json reads; everything else is left to encoding/json.
func TestDecodeFastJSON(t *testing.T) {
	for _, body := range []string{
		`{"users":["alice","bob","a/b%c"]}`,
		" \t\r\n{ \"users\" :\n[ \"alice\" ,\t\"bob\" ] }\n",
		`{"users":[]}`,
		`{"users":[ ]}`,
		`{"users":["ü☃😀","<&>","` + "\u2028" + `",""]}`,
		`{"users":["` + strings.Repeat("x", 1000) + `"]}`,
	} {
		if !checkFast(t, []byte(body)) {
			t.Errorf("%q: left to encoding/json, want it decoded", body)
		}
	}
	for _, body := range []string{
		`{"users":["a\"b"]}`,
		`{"users":["a\u0041"]}`,
		"{\"users\":[\"a\tb\"]}",
		`{"users":null}`,
		`{"Users":["alice"]}`,
		`{"users":["a"],"users":["b"]}`,
		`{"users":["a"],"x":1}`,
		`{"users":["a"]}}`,
		`{"users":["a"]}{"users":["b"]}`,
		`{"users":["a",]}`,
		`{"users":["a" "b"]}`,
		`{"users":[1]}`,
		`{"users":["a"`,
		`{"users":["a`,
		`{"users":`,
		`["a"]`,
		"\ufeff" + `{"users":["a"]}`,
	} {
		if checkFast(t, []byte(body)) {
			t.Errorf("%q: decoded, want it left to encoding/json", body)
		}
	}
}

// Whatever the body, the fast decoding reads what encoding/json reads or
// leaves it to encoding/json. `go test` runs the seeds; `make fuzz`
// explores.
func FuzzDecodeFastJSON(f *testing.F) {
	for _, s := range []string{
		`{"users":["alice","bob"]}`, ` { "users" : [ ] } `, `{"users":["a\\"]}`,
		`{"users":["a"],"users":["b"]}`, `{"users":["a",]}`, `{"users":["a"]} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) { // httpapi.DecodeJSON refuses it first
			return
		}
		checkFast(t, body)
	})
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzRequest is shaped like the requests the servers decode.
type fuzzRequest struct {
	Users      []string `json:"users"`
	TTLSeconds *int64   `json:"ttl_seconds"`
	Text       string   `json:"text"`
	Nested     *struct {
		At *string `json:"at"`
	} `json:"nested"`
}

// DecodeJSON, for any body: never panics; accepts only one valid JSON
// value of valid UTF-8 whose strings were not quietly altered (no U+FFFD
// the body did not hold); refuses everything else with an *Error answered
// 4xx in the envelope. `go test` runs the seeds; `make fuzz` explores.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"users":["alice"],"ttl_seconds":60}`,
		`{"users":["\ud83d\ude00"]}`,
		`{"users":["a\\ud800"]}`,
		`{"users":["a\ud800b"]}`,
		`{"users":["\ud800\u0041"]}`,
		`{"users":["\ud800\ud800\udc00"]}`,
		`{"users":["\uFFFD"],"text":"\ufffd"}`,
		"{\"users\":[\"\xff\"]}",
		"{\"text\":\"\xef\xbf\xbd\"}",
		`{"nested":{"at":"9999-12-31T23:59:59Z"}}`,
		`{"users":[]}{"users":[]}`,
		`{"users":[]}}`,
		`{"users":[],"x":1}`,
		`{"ttl_seconds":1e400}`,
		`   `,
		``,
		`null`,
		`"a"`,
		`[1,2,3]`,
		`{"text":"` + strings.Repeat("x", 1<<20) + `"}`, // a 1 MB value
		strings.Repeat("[", 20000),
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, body []byte, untyped bool) {
		var target any = &fuzzRequest{}
		if untyped {
			var v any
			target = &v
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		err := DecodeJSON(w, r, target)
		if err != nil {
			checkRefusal(t, r, log, body, err)
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted body %q that is not one valid JSON value of valid UTF-8", body)
		}
		if !untyped {
			return
		}
		replaced := bytes.Contains(body, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`))
		if !replaced && hasReplacement(*target.(*any)) {
			t.Fatalf("accepted body %q decodes with a U+FFFD it does not hold", body)
		}
	})
}

// checkRefusal fails t unless err is an *Error written as a 4xx in the
// envelope, which says why.
func checkRefusal(t *testing.T, r *http.Request, log *slog.Logger, body []byte, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalid && e.Code != CodeTooLarge {
		t.Fatalf("body %q refused with %v, want an *Error invalid or too_large", body, err)
	}
	w := httptest.NewRecorder()
	WriteError(w, r, log, err)
	var env struct {
		Error *Error `json:"error"`
	}
	if w.Code < 400 || w.Code >= 500 || json.Unmarshal(w.Body.Bytes(), &env) != nil || env.Error == nil || env.Error.Code != e.Code || env.Error.Message == "" {
		t.Fatalf("body %q answered %d %s", body, w.Code, w.Body)
	}
}

// hasReplacement reports whether a decoded JSON value holds U+FFFD in a
// string or an object key.
func hasReplacement(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, utf8.RuneError)
	case []any:
		for _, x := range v {
			if hasReplacement(x) {
				return true
			}
		}
	case map[string]any:
		for k, x := range v {
			if strings.ContainsRune(k, utf8.RuneError) || hasReplacement(x) {
				return true
			}
		}
	}
	return false
}

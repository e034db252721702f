package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	for _, c := range []struct {
		name, body string
		ok         bool
	}{
		{"plain", `{"users":["alice"]}`, true},
		{"surrogate pair", `{"users":["\ud83d\ude00"]}`, true},
		{"escaped backslash before u", `{"users":["a\\ud800"]}`, true},
		{"lone high surrogate", `{"users":["a\ud800b"]}`, false},
		{"lone low surrogate", `{"users":["a\udc00"]}`, false},
		{"high then not low", `{"users":["\ud800\u0041"]}`, false},
		{"high at the end", `{"users":["\ud800"]}`, false},
		{"raw invalid utf-8", "{\"users\":[\"\xff\"]}", false},
		{"empty", ``, false},
		{"two values", `{"users":[]}{"users":[]}`, false},
		{"unknown field", `{"users":[],"x":1}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var v struct{ Users []string }
			r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
			err := DecodeJSON(httptest.NewRecorder(), r, &v)
			if (err == nil) != c.ok {
				t.Fatalf("DecodeJSON(%s) = %v, want ok=%v", c.body, err, c.ok)
			}
		})
	}
}

// fastRequest decodes bodies that start with "fast:" itself.
type fastRequest struct {
	Users []string `json:"users"`
	fast  bool
}

func (f *fastRequest) DecodeFastJSON(body []byte) bool {
	s, ok := strings.CutPrefix(string(body), `"fast:`)
	if ok {
		f.Users, f.fast = []string{strings.TrimSuffix(s, `"`)}, true
	}
	return ok
}

// A FastDecoder decodes the bodies it knows, after the checks every body
// passes; encoding/json decodes the others.
func TestDecodeJSONFastDecoder(t *testing.T) {
	for _, c := range []struct {
		body  string
		fast  bool
		users string
		ok    bool
	}{
		{`"fast:alice"`, true, "alice", true},
		{`{"users":["bob"]}`, false, "bob", true},
		{"\"fast:\xff\"", false, "", false},           // invalid UTF-8, refused before
		{`"fast:\ud800"`, false, "", false},           // a lone surrogate, refused before
		{`{"users":["bob"],"x":1}`, false, "", false}, // encoding/json's refusal
	} {
		var v fastRequest
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
		err := DecodeJSON(httptest.NewRecorder(), r, &v)
		if (err == nil) != c.ok || v.fast != c.fast || c.ok && strings.Join(v.Users, ",") != c.users {
			t.Errorf("DecodeJSON(%s) = %v, users %q, fast %v; want ok %v, users %q, fast %v", c.body, err, v.Users, v.fast, c.ok, c.users, c.fast)
		}
	}
}

func TestEnvelope(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	srv := httptest.NewServer(Envelope(mux, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/things", http.StatusAccepted, ""},
		{"GET", "/things", http.StatusMethodNotAllowed, CodeMethod},
		{"GET", "/nothing", http.StatusNotFound, CodeNotFound},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
			continue
		}
		if c.code == "" {
			continue
		}
		var e struct{ Error Error }
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != c.code || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: body %q, want the envelope with code %s", c.method, c.path, body, c.code)
		}
	}
}

// TestWriteErrorAuth checks the statuses of the auth codes, and that only
// a 401 asks for a bearer credential.
func TestWriteErrorAuth(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		code      string
		status    int
		challenge string
	}{
		{CodeUnauthorized, http.StatusUnauthorized, `Bearer realm="presence"`},
		{CodeForbidden, http.StatusForbidden, ""},
	} {
		w := httptest.NewRecorder()
		WriteError(w, httptest.NewRequest("GET", "/", nil), log, Errorf(c.code, "no"))
		if w.Code != c.status || w.Header().Get("WWW-Authenticate") != c.challenge {
			t.Errorf("%s: %d with WWW-Authenticate %q, want %d with %q", c.code, w.Code, w.Header().Get("WWW-Authenticate"), c.status, c.challenge)
		}
	}
}

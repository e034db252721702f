package queryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-im/presence/queryapi"
)

// newServer serves the query API over the harness's state.
func newServer(t *testing.T) *httptest.Server { return newHarness(t).srv }

type statusJSON struct {
	User     string `json:"user"`
	State    string `json:"state"`
	Sessions []struct {
		Session, Device, Gateway string
		DeviceID                 string    `json:"device_id"`
		ConnectedAt              time.Time `json:"connected_at"`
	} `json:"sessions"`
	LastSeen *time.Time `json:"last_seen"`
	Version  int64      `json:"version"`
}

type errorJSON struct {
	Error struct{ Code, Message string } `json:"error"`
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestStatusQuery(t *testing.T) {
	srv := newServer(t)
	url := srv.URL + "/v1/apps/chat/status/query"

	code, body := post(t, url, `{"users":["bob","ghost","alice","bob"]}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var got struct{ Results []*statusJSON }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 4 {
		t.Fatalf("%d results, want 4: %s", len(got.Results), body)
	}
	if r := got.Results[0]; r == nil || r.User != "bob" || r.State != "offline" || r.LastSeen == nil || len(r.Sessions) != 0 {
		t.Errorf("results[0] = %+v, want bob offline with last_seen", r)
	}
	if got.Results[1] != nil {
		t.Errorf("results[1] = %+v, want null for an unknown user", got.Results[1])
	}
	if r := got.Results[2]; r == nil || r.User != "alice" || r.State != "online" || len(r.Sessions) != 1 || r.Sessions[0].DeviceID != "d1" || r.LastSeen != nil {
		t.Errorf("results[2] = %+v, want alice online", r)
	}
	if r := got.Results[3]; r == nil || r.User != "bob" || r.Version != 3 {
		t.Errorf("results[3] = %+v, want bob again", r)
	}
	// The JSON shape of the contract, field for field.
	if !bytes.Contains(body, []byte(`"custom":null`)) || !bytes.Contains(body, []byte(`"device_id":"d1"`)) || !bytes.Contains(body, []byte(`"connected_at":"`)) {
		t.Errorf("body lacks contract fields: %s", body)
	}
}

func TestStatusQueryEdges(t *testing.T) {
	srv := newServer(t)
	url := srv.URL + "/v1/apps/chat/status/query"
	many := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%q", fmt.Sprintf("u%d", i))
		}
		return `{"users":[` + strings.Join(ids, ",") + `]}`
	}
	for _, c := range []struct {
		name     string
		body     string
		code     int
		errCode  string
		nResults int
	}{
		{"empty list", `{"users":[]}`, 200, "", 0},
		{"500 users", many(500), 200, "", 500},
		{"501 users", many(501), 400, "too_many_users", 0},
		{"empty id", `{"users":["alice",""]}`, 400, "invalid", 0},
		{"129-byte id", `{"users":["` + strings.Repeat("x", 129) + `"]}`, 400, "invalid", 0},
		{"128-byte id", `{"users":["` + strings.Repeat("x", 128) + `"]}`, 200, "", 1},
		{"control character", `{"users":["a\u0007b"]}`, 400, "invalid", 0},
		{"raw invalid utf-8", "{\"users\":[\"a\xffb\"]}", 400, "invalid", 0},
		{"not json", `users=alice`, 400, "invalid", 0},
		{"no users field", `{}`, 400, "invalid", 0},
		{"unknown field", `{"users":[],"extra":1}`, 400, "invalid", 0},
		{"users not a list", `{"users":"alice"}`, 400, "invalid", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := post(t, url, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %s", code, c.code, body)
			}
			if c.errCode != "" {
				var e errorJSON
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != c.errCode || e.Error.Message == "" {
					t.Fatalf("error body %s, want code %q", body, c.errCode)
				}
				return
			}
			var got struct{ Results []*statusJSON }
			if err := json.Unmarshal(body, &got); err != nil || got.Results == nil || len(got.Results) != c.nResults {
				t.Fatalf("body %s, want %d results", body, c.nResults)
			}
		})
	}
}

func TestBadApp(t *testing.T) {
	srv := newServer(t)
	code, body := post(t, srv.URL+"/v1/apps/bad%20app/status/query", `{"users":["alice"]}`)
	if code != 400 || !strings.Contains(string(body), `"invalid"`) {
		t.Fatalf("status %d: %s", code, body)
	}
}

func TestUserStatus(t *testing.T) {
	srv := newServer(t)
	for _, c := range []struct {
		path string
		code int
		user string
	}{
		{"/v1/apps/chat/users/alice/status", 200, "alice"},
		{"/v1/apps/chat/users/bob/status", 200, "bob"},
		{"/v1/apps/chat/users/a%2Fb%25c/status", 200, "a/b%c"},
		{"/v1/apps/chat/users/ghost/status", 404, ""},
		{"/v1/apps/other/users/alice/status", 404, ""},
		{"/v1/apps/chat/users/" + strings.Repeat("x", 129) + "/status", 400, ""},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("GET %s: %d, want %d: %s", c.path, resp.StatusCode, c.code, body)
			continue
		}
		if c.code == 200 {
			var st statusJSON
			if err := json.Unmarshal(body, &st); err != nil || st.User != c.user {
				t.Errorf("GET %s: %s, want user %q", c.path, body, c.user)
			}
		} else {
			var e errorJSON
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
				t.Errorf("GET %s: error body %s", c.path, body)
			}
		}
	}
}

func TestOps(t *testing.T) {
	srv := newServer(t)
	post(t, srv.URL+"/v1/apps/chat/status/query", `{"users":["alice","ghost"]}`)
	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ready"`,
		"/metrics": `presence_queryapi_lookups_total{result="unknown"} 1`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %s, want %s", path, resp.StatusCode, body, want)
		}
	}
}

// While the state is rebuilt, lookups answer 503 not_ready, not answers
// that may be wrong; writes go to Kafka and are not held back.
func TestGate(t *testing.T) {
	rebuilding := errors.New("3 partitions behind")
	var gate atomic.Pointer[error]
	gate.Store(&rebuilding)
	h := newHarness(t, func(c *queryapi.Config) {
		c.Gate = func(context.Context) error { return *gate.Load() }
	})
	for _, c := range lookups {
		code, body := h.do(c.method, c.path, c.body)
		wantError(t, code, body, http.StatusServiceUnavailable, "not_ready")
	}
	h.empty()
	if code, body := h.do("PUT", "/v1/apps/chat/users/alice/custom-status", `{"status":1}`); code != http.StatusAccepted {
		t.Errorf("custom status while rebuilding: %d %s, want 202", code, body)
	}
	var open error
	gate.Store(&open)
	if code, body := h.do("POST", "/v1/apps/chat/status/query", `{"users":["alice"]}`); code != http.StatusOK {
		t.Fatalf("after the rebuild: %d %s", code, body)
	}
}

package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-im/presence/queryapi/webhook"
)

// Ways a receiver answers one request.
type answer int

const (
	accept answer = iota // 200
	fail                 // 500
	hangUp               // the connection is closed without an answer
	hang                 // no answer until the sender gives up, or release
)

// receiver is a webhook endpoint: a real HTTP server that checks every
// body's signature, answers as its plan says, and records what it
// accepted.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	release chan struct{} // closed: hanging requests are accepted

	mu       sync.Mutex
	secrets  []string // a body signed with any of them is genuine
	plan     func(n int, user string, version int64) answer
	requests int
	failed   int // answered fail or hangUp
	badSigs  int
	accepted map[string][]int64 // versions by user, as accepted
	signedBy map[int64]string   // the secret of the last accepted body of each version
	inFlight int
	maxIn    int
	changed  chan struct{} // closed and replaced at each acceptance
}

func newReceiver(t *testing.T, plan func(n int, user string, version int64) answer, secrets ...string) *receiver {
	rc := &receiver{t: t, release: make(chan struct{}), secrets: secrets, plan: plan,
		accepted: map[string][]int64{}, signedBy: map[int64]string{}, changed: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() {
		rc.open()
		rc.srv.Close()
	})
	return rc
}

// open accepts every request from now on, hanging ones included.
func (rc *receiver) open() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	select {
	case <-rc.release:
	default:
		close(rc.release)
	}
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var msg struct {
		Type    string `json:"type"`
		User    string `json:"user"`
		State   string `json:"state"`
		Version int64  `json:"version"`
	}
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	secret := rc.signer(r.Header.Get(webhook.SignatureHeader), body)
	if secret == "" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &msg) != nil || msg.Type != "presence" {
		rc.badSigs++
		rc.mu.Unlock()
		rc.t.Errorf("a request that is not a signed presence message: %s %q %s", r.Method, r.Header.Get(webhook.SignatureHeader), body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	a := rc.plan(n, msg.User, msg.Version)
	select {
	case <-rc.release:
		a = accept
	default:
	}
	rc.inFlight++
	rc.maxIn = max(rc.maxIn, rc.inFlight)
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inFlight--
		rc.mu.Unlock()
	}()

	switch a {
	case hang:
		select {
		case <-r.Context().Done(): // the sender gave up the attempt
			rc.count(func() { rc.failed++ })
			return
		case <-rc.release:
		}
	case fail:
		rc.count(func() { rc.failed++ })
		w.WriteHeader(http.StatusInternalServerError)
		return
	case hangUp:
		rc.count(func() { rc.failed++ })
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	rc.count(func() {
		rc.accepted[msg.User] = append(rc.accepted[msg.User], msg.Version)
		rc.signedBy[msg.Version] = secret
		close(rc.changed)
		rc.changed = make(chan struct{})
	})
}

func (rc *receiver) count(f func()) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f()
}

// signer is the secret that signed body as header says, "" for none.
func (rc *receiver) signer(header string, body []byte) string {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ""
	}
	for _, s := range rc.secrets {
		mac := hmac.New(sha256.New, []byte(s))
		mac.Write(body)
		if hmac.Equal([]byte(got), []byte(hex.EncodeToString(mac.Sum(nil)))) {
			return s
		}
	}
	return ""
}

// wait waits until done holds of what the receiver accepted, checking it
// at each acceptance.
func (rc *receiver) wait(what string, done func(accepted map[string][]int64) bool) {
	rc.t.Helper()
	for {
		rc.mu.Lock()
		ok, changed := done(rc.accepted), rc.changed
		rc.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Minute): // a guard, not a timing
			rc.t.Fatalf("%s: not so after a minute", what)
		}
	}
}

// all is a condition of wait: every version of every user of want was
// accepted.
func all(want map[string][]int64) func(map[string][]int64) bool {
	return func(got map[string][]int64) bool {
		for user, versions := range want {
			for _, v := range versions {
				if !slices.Contains(got[user], v) {
					return false
				}
			}
		}
		return true
	}
}

// checkOrder fails t when a user's accepted versions ever go back.
func (rc *receiver) checkOrder() {
	rc.t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for user, versions := range rc.accepted {
		if !slices.IsSorted(versions) {
			rc.t.Errorf("user %s: versions accepted in the order %v", user, versions)
		}
	}
}

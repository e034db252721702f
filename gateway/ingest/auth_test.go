package ingest_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/gateway/internal/kafkatest"
	"github.com/presence-im/presence/schemas"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/auth/authtest"
)

// TestAuthTable posts events and heartbeats with every kind of
// credential to a handler publishing to Kafka: a gateway key publishes
// for its app and its gateway ids only, anything else is refused before
// anything is written.
func TestAuthTable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, schemas.SessionsTopic, schemas.GatewaysTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pub, err := gateway.New(gateway.Brokers(c.ListenAddrs()...), gateway.ID("ingest"), gateway.Atomic())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	f := authtest.New(t)
	a, err := auth.New(auth.Config{File: f.File})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ingest.New(pub, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), a)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	events := func(gw string) string {
		return `{"gateway":"` + gw + `","epoch":"boot-2","events":[{"type":"connect","user":"alice","session":"s1","device":"ios"}]}`
	}
	const heartbeat = `{"epoch":"boot-2"}`
	expired := authtest.Sign(t, jwt.SigningMethodHS256, []byte(authtest.UserSecret), "", authtest.Claims("chat", "alice", -time.Hour))
	alice := authtest.HS256(t, authtest.UserSecret, "chat", "alice")
	cases := []struct {
		name, cred, path, body string
		want                   int
	}{
		{"events, no credential", "", "/v1/apps/chat/events", events("gw-1"), 401},
		{"events, wrong secret", authtest.Gateway + "x", "/v1/apps/chat/events", events("gw-1"), 401},
		{"events, expired token", expired, "/v1/apps/chat/events", events("gw-1"), 401},
		{"events, alg none", authtest.None(t, "chat", "alice"), "/v1/apps/chat/events", events("gw-1"), 401},
		{"events, user token", alice, "/v1/apps/chat/events", events("gw-1"), 403},
		{"events, read key", authtest.Read, "/v1/apps/chat/events", events("gw-1"), 403},
		{"events, backend key", authtest.Backend, "/v1/apps/chat/events", events("gw-1"), 403},
		{"events, other gateway's key", authtest.OtherGateway, "/v1/apps/chat/events", events("gw-1"), 403},
		{"events, other app's gateway key", authtest.GamesGateway, "/v1/apps/chat/events", events("gw-1"), 403},
		{"events, own key for another gateway", authtest.Gateway, "/v1/apps/chat/events", events("gw-2"), 403},
		{"heartbeat, no credential", "", "/v1/gateways/gw-1/heartbeat", heartbeat, 401},
		{"heartbeat, wrong secret", "not-a-key", "/v1/gateways/gw-1/heartbeat", heartbeat, 401},
		{"heartbeat, user token", alice, "/v1/gateways/gw-1/heartbeat", heartbeat, 403},
		{"heartbeat, backend key", authtest.Backend, "/v1/gateways/gw-1/heartbeat", heartbeat, 403},
		{"heartbeat, other gateway's key", authtest.OtherGateway, "/v1/gateways/gw-1/heartbeat", heartbeat, 403},
		{"heartbeat, own key for another gateway", authtest.Gateway, "/v1/gateways/gw-2/heartbeat", heartbeat, 403},
	}
	allowed := []struct {
		name, cred, path, body string
	}{
		{"events, own gateway", authtest.Gateway, "/v1/apps/chat/events", events("gw-1")},
		{"events, the other gateway's own key", authtest.OtherGateway, "/v1/apps/chat/events", events("gw-2")},
		{"events, other app with its key", authtest.GamesGateway, "/v1/apps/games/events", events("gw-1")},
		{"heartbeat, own gateway", authtest.Gateway, "/v1/gateways/gw-1/heartbeat", heartbeat},
		{"heartbeat, a key of another app listing the gateway", authtest.GamesGateway, "/v1/gateways/gw-1/heartbeat", heartbeat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, header, body := postAs(t, srv.URL+tc.path, tc.cred, tc.body)
			var e struct{ Error struct{ Code string } }
			_ = json.Unmarshal([]byte(body), &e)
			want := map[int]string{401: "unauthorized", 403: "forbidden"}[tc.want]
			if code != tc.want || e.Error.Code != want {
				t.Fatalf("%d %s, want %d %s", code, body, tc.want, want)
			}
			if (code == 401) != (header.Get("WWW-Authenticate") != "") {
				t.Errorf("status %d with WWW-Authenticate %q", code, header.Get("WWW-Authenticate"))
			}
		})
	}
	for _, topic := range []string{schemas.SessionsTopic, schemas.GatewaysTopic} {
		if recs := kafkatest.ReadCommitted(t, c.ListenAddrs(), topic); len(recs) != 0 {
			t.Fatalf("refused requests wrote %d records to %s", len(recs), topic)
		}
	}
	for _, tc := range allowed {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, body := postAs(t, srv.URL+tc.path, tc.cred, tc.body); code != http.StatusAccepted {
				t.Fatalf("%d %s, want 202", code, body)
			}
		})
	}
	if recs := kafkatest.ReadCommitted(t, c.ListenAddrs(), schemas.SessionsTopic); len(recs) != 3 {
		t.Errorf("%d session records, want the 3 connects accepted", len(recs))
	}
}

func postAs(t *testing.T, url, cred, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

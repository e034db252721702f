package dev_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-im/presence/presence/dev"
)

// The seeds' APIs (/compat) through the whole pipeline: a subscription
// made through the Java IM's route is notified like a native one, a
// custom status set through it reads back through the native API and
// the seeds' lookups, and both survive a replay into an empty Redis.
func TestCompatEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startDevWith(t, dev.Config{DataDir: dir})
	const im = "/compat/im/v1/user/status/"

	dave := p.dial(t, "dave", "dave-1", "web")
	p.compat(t, im+"subscribeUserOnlineStatus?appId=chat&identifier=dave", `{"subUserId":["erin"],"subTime":600000}`)
	eventually(t, "dave hears erin's custom status", func() bool {
		// The subscription is applied apart from the status: the first
		// changes may come before it.
		p.compat(t, im+"setUserCustomerStatus?appId=chat&identifier=erin", `{"customStatus":1,"customText":"`+time.Now().Format(time.RFC3339Nano)+`"}`)
		select {
		case m := <-dave.msgs:
			return m.User == "erin" && m.Custom != nil && m.Custom.Status == 1
		case <-time.After(time.Second):
			return false
		}
	})

	p.dial(t, "erin", "erin-1", "ios")
	m := dave.next(t)
	for m.State != "online" {
		m = dave.next(t)
	}
	_, body := p.do(t, "GET", "/v1/apps/chat/users/erin/status", "")
	var st struct {
		Sessions []struct{ Gateway string }
		Custom   struct{ Text string }
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Sessions) != 1 {
		t.Fatalf("erin's status: %s (%v)", body, err)
	}
	text := st.Custom.Text
	if len(m.Sessions) != 1 || m.Custom == nil || m.Custom.Text != text {
		t.Fatalf("dave heard %v, want erin online on 1 session with %q", m, text)
	}
	if got := p.compat(t, "/compat/leancloud/1.1/functions/getOnOffStatus", `{"peerIds":["erin","dave","nobody"]}`, "X-LC-Id", "chat"); got != `{"result":["1","1",null]}` {
		t.Errorf("getOnOffStatus: %s", got)
	}
	want := `{"code":200,"msg":"success","data":{"erin":{"session":[{"userId":"erin","appId":"chat","clientType":2,"version":null,` +
		`"connectState":1,"brokerId":null,"brokerHost":"` + st.Sessions[0].Gateway + `","imei":"ios-of-erin"}],"customText":"` + text + `","customStatus":1}}}`
	if got := p.compat(t, im+"queryUserOnlineStatus?appId=chat", `{"userList":["erin"]}`); got != want {
		t.Errorf("queryUserOnlineStatus:\n%s\nwant\n%s", got, want)
	}

	// The embedded Redis starts empty: everything is replayed.
	dave.close()
	p.Stop(t)
	p = startDevWith(t, dev.Config{DataDir: dir})
	if got := p.compat(t, "/compat/leancloud/1.1/functions/getOnOffStatus", `{"peerIds":["erin"]}`, "X-LC-Id", "chat"); got != `{"result":["0"]}` {
		t.Errorf("getOnOffStatus after the replay: %s", got)
	}
	want = `{"code":200,"msg":"success","data":{"erin":{"session":[],"customText":"` + text + `","customStatus":1}}}`
	if got := p.compat(t, im+"queryUserOnlineStatus?appId=chat", `{"userList":["erin"]}`); got != want {
		t.Errorf("after the replay:\n%s\nwant\n%s", got, want)
	}
	dave = p.dial(t, "dave", "dave-2", "web")
	p.compat(t, im+"setUserCustomerStatus?appId=chat&identifier=erin", `{"customStatus":2,"customText":"replayed"}`)
	dave.expect(t, "presence erin offline 2:replayed 0 sessions")
}

// compat POSTs body to a compat path of the query API, with the headers
// given as name, value pairs, and returns the answer, which must be 200.
func (p *pipeline) compat(t *testing.T, path, body string, header ...string) string {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+p.Query+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !json.Valid(b) {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return strings.TrimSuffix(string(b), "\n")
}

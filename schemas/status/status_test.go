package status_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/presence-im/presence/schemas/status"
)

// The WebSocket gateway's message is its type, then the members of the
// query API's Status, byte for byte as encoding/json writes the Status.
func TestMessageIsTypeThenStatus(t *testing.T) {
	at := status.Time{Time: time.UnixMilli(1_700_000_000_389)}
	for _, st := range []status.Status{
		{User: "ann", State: status.Offline, Sessions: []status.Session{}},
		{User: "b<o>b & \"co\"\n", State: status.Online, Version: 42, LastSeen: &at,
			Sessions: []status.Session{{Session: "s1", Device: "ios", DeviceID: "é\u2028", Gateway: "gw-1", ConnectedAt: at}},
			Custom:   &status.Custom{Status: 2, Text: "in a meeting \xff"}},
	} {
		want, err := json.Marshal(struct {
			Type string `json:"type"`
			status.Status
		}{"presence", st})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.AppendMessageJSON(nil, "presence"); string(got) != string(want) {
			t.Errorf("message of %q:\n got  %s\n want %s", st.User, got, want)
		}
		plain, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.AppendJSON(nil); string(got) != string(plain) {
			t.Errorf("status of %q:\n got  %s\n want %s", st.User, got, plain)
		}
	}
}

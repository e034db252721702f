package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/presence-im/presence/service/auth/authtest"
)

// TestWebhooks reads the apps' webhooks, and sees a reload replace them:
// the channel Webhooks returned is closed by a good reload only, and the
// endpoint keeps its id when its secret rotates.
func TestWebhooks(t *testing.T) {
	f := authtest.New(t)
	const secret, rotated = "chat-hook-secret-0001", "chat-hook-secret-0002"
	f.Apps["chat"].(map[string]any)["webhooks"] = []any{map[string]any{"url": "https://hooks.example/chat", "secret": secret}}
	f.Write()
	a := load(t, f.File)
	hooks, replaced := a.Webhooks()
	if len(hooks) != 1 || hooks[0].App != "chat" || hooks[0].URL != "https://hooks.example/chat" || string(hooks[0].Secret) != secret ||
		len(hooks[0].ID) != 16 || hooks[0].Loaded.IsZero() {
		t.Fatalf("webhooks %+v, want chat's one", hooks)
	}
	id := hooks[0].ID

	if err := os.WriteFile(f.File, []byte(`{"apps":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if a.Reload() == nil {
		t.Fatal("a bad file reloaded")
	}
	select {
	case <-replaced:
		t.Fatal("a failed reload closed the channel")
	default:
	}

	f.Apps["chat"].(map[string]any)["webhooks"] = []any{map[string]any{"url": "https://hooks.example/chat", "secret": rotated}}
	f.Apps["games"].(map[string]any)["webhooks"] = []any{map[string]any{"url": "http://127.0.0.1:9/games", "secret": secret}}
	f.Write()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-replaced:
	default:
		t.Fatal("a reload left the channel open")
	}
	hooks, _ = a.Webhooks()
	if len(hooks) != 2 || hooks[0].App != "chat" || string(hooks[0].Secret) != rotated || hooks[0].ID != id || hooks[1].App != "games" {
		t.Fatalf("after the reload: %+v, want chat's with the rotated secret and the same id, then games'", hooks)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("hook", "hook", hooks[0])
	for _, printed := range []string{fmt.Sprint(hooks), fmt.Sprintf("%+v %#v", hooks[0], hooks[0]), logged.String()} {
		if strings.Contains(printed, rotated) || strings.Contains(printed, "hooks.example") || !strings.Contains(printed, id) {
			t.Errorf("a webhook printed as %q: want its id, not its url or secret", printed)
		}
	}
	var none *Authenticator
	if hooks, ch := none.Webhooks(); hooks != nil || ch != nil {
		t.Error("a nil Authenticator has webhooks")
	}
}

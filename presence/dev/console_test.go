package dev_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleInBrowser opens the console of a running `presence dev` in a
// headless Chromium (Debian's chromium; make test installs it) and
// watches it follow the pipeline: a user who connects through the
// gateway's events endpoint shows in the online list, and leaves it on
// disconnecting; the user's panel lists the sessions the user has; the
// Operations panel shows the lease of the events' gateway (gw-1), the partitions of the
// state topics and the two users who came online. It
// keeps a screenshot in the test's temporary directory.
func TestConsoleInBrowser(t *testing.T) {
	p := startDev(t, t.TempDir(), "")
	dir := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.WindowSize(1100, 700),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	url := "http://" + p.Query + "/console/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("online"))); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}

	if code, body := p.post(t, "/v1/apps/chat/events", events(connect("alice", "phone"), connect("alice", "laptop"), connect("bob", "web"))); code != http.StatusAccepted {
		t.Fatalf("events: %d %s", code, body)
	}
	waitText(ctx, t, "#online", func(s string) bool {
		return strings.Contains(s, "alice (2 sessions)") && strings.Contains(s, "bob (1 session)")
	})

	// The user's panel: pick alice in the list, see both sessions.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#online li[data-user="alice"] button`))); err != nil {
		t.Fatal(err)
	}
	waitText(ctx, t, "#detail", func(s string) bool {
		return strings.Contains(s, "alice is online") && strings.Contains(s, "phone") && strings.Contains(s, "laptop")
	})
	// The Operations panel: the events' gateway, heartbeating, with its lease, the state
	// topics' partitions and their processor, and the two users who came online in the chart's
	// text alternative.
	if code, body := p.post(t, "/v1/gateways/gw-1/heartbeat", `{"epoch":"boot-1"}`); code != http.StatusAccepted {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	waitText(ctx, t, `#gateways tr[data-gateway="gw-1"]`, func(s string) bool { return strings.Contains(s, "boot-1") && strings.Contains(s, "alive") })
	waitText(ctx, t, "#partitions tbody", func(s string) bool {
		return strings.Contains(s, "presence.sessions") && strings.Contains(s, "presence.subscriptions") &&
			strings.Contains(s, "presence-processor (") // the member of the processors' group holding them
	})
	waitText(ctx, t, "#chart-text", func(s string) bool { return strings.HasPrefix(s, "2 users came online") })
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "console.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if out := os.Getenv("PRESENCE_CONSOLE_SCREENSHOT"); out != "" { // how docs/console.png is made
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// bob leaves: the list drops him, the watch turns alice's panel
	// to one session when she closes the laptop.
	if code, body := p.post(t, "/v1/apps/chat/events", events(disconnect("bob", "web"), disconnect("alice", "laptop"))); code != http.StatusAccepted {
		t.Fatalf("events: %d %s", code, body)
	}
	waitText(ctx, t, "#online", func(s string) bool {
		return strings.Contains(s, "alice (1 session)") && !strings.Contains(s, "bob")
	})
	waitText(ctx, t, "#detail", func(s string) bool {
		return strings.Contains(s, "phone") && !strings.Contains(s, "laptop")
	})
}

// waitText polls the text of the element sel until ok says yes, for at
// most 15 seconds.
func waitText(ctx context.Context, t *testing.T, sel string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		if ok(text) {
			return
		}
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s after 15s: %q; the page reads:\n%s", sel, text, page)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", sel, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// chromiumPath finds Debian's chromium (make test installs it).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("no chromium on PATH: run make chromium (Debian package chromium)")
	return ""
}

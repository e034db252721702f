package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Bounds of an app's webhooks in the auth file.
const (
	// MaxWebhooks is the most webhooks one app may list: each is a
	// consumer of its own reading every change (see queryapi/webhook).
	MaxWebhooks = 8
	// MaxWebhookURL is the longest webhook URL, in bytes.
	MaxWebhookURL = 2048
	// MinWebhookSecret is the shortest webhook secret, in bytes: as for a
	// key, no easier to guess than a random 128-bit value.
	MinWebhookSecret = 16
)

// Webhook is an endpoint an app's entry lists under "webhooks": every
// visible change of a user of App is POSTed to URL, signed with Secret.
// The URL may hold credentials of its own (a token in its path): like
// the secret, it is never logged; ID names the endpoint in logs.
type Webhook struct {
	App    string
	URL    string
	Secret []byte
	// ID is the first 16 hex digits of the SHA-256 of the URL: stable
	// across reloads and secret rotations, and safe to log.
	ID string
	// Loaded is when the file this one was read from was loaded: a new
	// endpoint is told of the changes from then on.
	Loaded time.Time
}

// String names w by its app and id, never its URL or secret, so that a
// Webhook printed by mistake leaks neither.
func (w Webhook) String() string { return w.App + "/" + w.ID }

// GoString is String, for %#v.
func (w Webhook) GoString() string { return w.String() }

// LogValue logs w by its app and id only.
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("app", w.App), slog.String("id", w.ID))
}

type webhookJSON struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// readWebhooks checks the webhooks app lists. Its errors name the app and
// the webhook's index, never its URL or secret.
func readWebhooks(app string, list []webhookJSON, loaded time.Time) ([]Webhook, error) {
	if len(list) > MaxWebhooks {
		return nil, fmt.Errorf("app %q: %d webhooks; at most %d", app, len(list), MaxWebhooks)
	}
	hooks := make([]Webhook, 0, len(list))
	ids := map[string]int{}
	for i, wj := range list {
		if err := checkWebhookURL(wj.URL); err != nil {
			return nil, fmt.Errorf("app %q: webhooks[%d]: %w", app, i, err)
		}
		if len(wj.Secret) < MinWebhookSecret {
			return nil, fmt.Errorf("app %q: webhooks[%d]: secret missing or shorter than %d bytes", app, i, MinWebhookSecret)
		}
		sum := sha256.Sum256([]byte(wj.URL))
		id := hex.EncodeToString(sum[:8])
		if j, dup := ids[id]; dup {
			return nil, fmt.Errorf("app %q: webhooks[%d] has the url of webhooks[%d]", app, i, j)
		}
		ids[id] = i
		hooks = append(hooks, Webhook{App: app, URL: wj.URL, Secret: []byte(wj.Secret), ID: id, Loaded: loaded})
	}
	return hooks, nil
}

// checkWebhookURL accepts an absolute http or https URL with a host and
// no user info (the secret signs; credentials in a URL end up in proxies'
// logs). Its errors do not quote the URL.
func checkWebhookURL(raw string) error {
	if raw == "" {
		return errors.New("no url")
	}
	if len(raw) > MaxWebhookURL {
		return fmt.Errorf("url longer than %d bytes", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("url does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("url scheme is not http or https")
	case u.Host == "":
		return errors.New("url has no host")
	case u.User != nil:
		return errors.New("url holds user info: sign with the secret instead")
	case u.Fragment != "":
		return errors.New("url has a fragment")
	}
	return nil
}

// Webhooks returns the webhooks of the file loaded last, every app's in
// the order of the apps' ids then as listed, and a channel closed when a
// reload replaces them. A nil Authenticator has none, and a nil channel.
// The returned slice is shared: do not change it.
func (a *Authenticator) Webhooks() ([]Webhook, <-chan struct{}) {
	if a == nil {
		return nil, nil
	}
	kr := a.current()
	return kr.webhooks, kr.replaced
}

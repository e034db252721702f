package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
	"github.com/presence-im/presence/schemas/status"
)

// SignatureHeader is the header holding a body's signature:
// "sha256=" and the hex HMAC-SHA256 of the body with the webhook's secret.
const SignatureHeader = "Presence-Signature"

// maxAnswer is how much of an answer's body is read (and dropped), so
// that its connection can serve the next request.
const maxAnswer = 4 << 10

// deliverer delivers changes one at a time, reusing its buffers: one per
// user delivered at once.
type deliverer struct {
	e      *endpoint
	change pb.StatusChange
	body   []byte
	mac    hash.Hash
	sig    []byte
}

func (e *endpoint) newDeliverer() *deliverer {
	return &deliverer{e: e, mac: hmac.New(sha256.New, e.hook.Secret)}
}

// deliver sends the change r holds until it is acknowledged or given up.
// It reports false when ctx ended first: the change is neither.
func (d *deliverer) deliver(ctx context.Context, r *kgo.Record) bool {
	e := d.e
	st, ok := d.prepare(r)
	if !ok {
		// Not a change of this app: nothing to tell.
		e.counts.skipped.Inc()
		e.log.Warn("skipping a record of presence.changes that is not a change of its key's user",
			"partition", r.Partition, "offset", r.Offset)
		return true
	}
	if len(d.body) > MaxBody {
		e.counts.failed.Inc()
		e.log.Error("giving up a change: its body is too large", "user", st.User, "version", st.Version, "bytes", len(d.body))
		return true
	}
	for attempt := 1; ; attempt++ {
		err := d.post(ctx)
		if err == nil {
			e.counts.delivered.Inc()
			if ms := d.change.GetTimestampMs(); ms > 0 {
				e.counts.lag.Observe(time.Since(time.UnixMilli(ms)).Seconds())
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt >= e.s.cfg.MaxAttempts {
			e.counts.failed.Inc()
			e.log.Error("giving up a change", "user", st.User, "version", st.Version, "attempts", attempt, "err", err)
			return true
		}
		e.counts.retried.Inc()
		if !sleep(ctx, d.backoff(attempt)) {
			return false
		}
	}
}

// prepare reads the change r holds into d.change, its body into d.body
// and the body's signature into d.sig. It reports false when r is not a
// change of a user of the endpoint's app under that user's key.
func (d *deliverer) prepare(r *kgo.Record) (status.Status, bool) {
	d.change.Reset()
	if err := proto.Unmarshal(r.Value, &d.change); err != nil || d.change.GetApp() != d.e.hook.App {
		return status.Status{}, false
	}
	user := d.change.GetStatus().GetUser()
	if schemas.ValidateID("user", user) != nil || schemas.UserKey(d.e.hook.App, user) != string(r.Key) {
		return status.Status{}, false
	}
	st := status.FromProto(d.change.GetStatus())
	d.body = st.AppendMessageJSON(d.body[:0], "presence")
	d.sign()
	return st, true
}

// sign puts the signature header's value of d.body in d.sig.
func (d *deliverer) sign() {
	d.mac.Reset()
	d.mac.Write(d.body)
	var sum [sha256.Size]byte
	d.sig = append(d.sig[:0], "sha256="...)
	d.sig = hex.AppendEncode(d.sig, d.mac.Sum(sum[:0]))
}

// post makes one attempt. Its errors say what failed without the URL.
func (d *deliverer) post(ctx context.Context) error {
	e := d.e
	ctx, cancel := context.WithTimeout(ctx, e.s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.hook.URL, bytes.NewReader(d.body))
	if err != nil {
		return errors.New("making the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "presence-webhook")
	req.Header.Set(SignatureHeader, string(d.sig))
	start := time.Now()
	resp, err := e.s.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // its message holds the URL
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s", e.s.cfg.Timeout)
		}
		return fmt.Errorf("sending: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	e.counts.request.Observe(time.Since(start).Seconds())
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("answered " + strconv.Itoa(resp.StatusCode))
	}
	return nil
}

// backoff is the wait after the attempt-th failed attempt: MinBackoff
// doubled attempt-1 times, at most MaxBackoff, drawn between half and all
// of it.
func (d *deliverer) backoff(attempt int) time.Duration {
	cfg := &d.e.s.cfg
	b := cfg.MinBackoff
	for i := 1; i < attempt && b < cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, cfg.MaxBackoff)
	return b/2 + rand.N(b/2+1)
}

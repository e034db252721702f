package socket

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas/status"
)

// A client reports its session's activity with a text message
//
//	{"type":"activity","activity":"active"|"idle"|"background"}
//
// which the gateway publishes as an activity record of the session
// (gateway.ActivityChange). A client that flaps does not flood Kafka:
// each session publishes at most one activity per
// Config.ActivityInterval, the latest reported winning, and none that
// says what its last one did (a session starts active); one Kafka did not
// take is tried again an interval later, until the session ends. Every other
// message, or one longer than maxClientMessage bytes, is ignored (as all
// messages were before activity) and counted as invalid.
//
// The activity record re-asserts the session's connect, so none may be
// written after its disconnect: a session's reports and its disconnect
// are published under its conn's order lock, and the reports stop once
// the session has ended.

// DefaultActivityInterval is how often, at most, a session publishes its
// activity.
const DefaultActivityInterval = time.Second

// maxClientMessage is the longest message a client sends that is read:
// an activity message is far shorter.
const maxClientMessage = 256

// Labels of presence_gateway_socket_messages_total{result}.
const (
	messageActivity = "activity"
	messageInvalid  = "invalid"
)

type clientMessage struct {
	Type     string `json:"type"`
	Activity string `json:"activity"`
}

// receive reads one client message from r and records what it says.
func (s *Server) receive(c *conn, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxClientMessage+1))
	if err != nil {
		return err
	}
	if len(b) > maxClientMessage {
		s.metrics.messages.WithLabelValues(messageInvalid).Inc()
		_, err = io.Copy(io.Discard, r)
		return err
	}
	var m clientMessage
	a, ok := status.Activity(""), false
	if json.Unmarshal(b, &m) == nil && m.Type == "activity" {
		a, ok = status.ParseActivity(m.Activity)
	}
	if !ok {
		s.metrics.messages.WithLabelValues(messageInvalid).Inc()
		return nil
	}
	s.metrics.messages.WithLabelValues(messageActivity).Inc()
	c.mu.Lock()
	c.activity = a
	c.mu.Unlock()
	select {
	case c.reported <- struct{}{}:
	default: // a report is pending: it reads the latest
	}
	return nil
}

// report publishes the activity the client reports, at most once per
// activity interval, until the session ends.
func (s *Server) report(c *conn) {
	published := status.Active // a connect says active
	var last time.Time
	for {
		select {
		case <-c.done:
			return
		case <-c.reported:
		}
		if wait := s.activityEvery - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-c.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
		c.mu.Lock()
		a := c.activity
		c.mu.Unlock()
		if a == published {
			continue
		}
		last = time.Now()
		if s.publishActivity(c, a) {
			published = a
			continue
		}
		select { // Kafka did not take it: try again after the interval
		case c.reported <- struct{}{}:
		default:
		}
	}
}

// publishActivity publishes a as c's activity, unless c has ended; it
// reports whether Kafka has it.
func (s *Server) publishActivity(c *conn, a status.Activity) bool {
	c.order.Lock()
	defer c.order.Unlock()
	if c.ended() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), PublishTimeout)
	defer cancel()
	err := s.pub.Publish(ctx, gateway.Event{Type: gateway.ActivityChange, App: c.app, User: c.user,
		Session: c.session, Device: c.device, DeviceID: c.deviceID, Activity: a})
	if err != nil {
		s.log.Warn("publishing an activity", "app", c.app, "user", c.user, "session", c.session, "err", err)
		return false
	}
	return true
}

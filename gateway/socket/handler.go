package socket

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/httpapi"
)

// handle serves GET /v1/apps/{app}/ws?user=…&session=…&device=…[&device_id=…].
// Everything that can be refused is refused before the upgrade, in the
// JSON error envelope: a foreign origin, missing or invalid credentials,
// another user's id, invalid ids, a session id open here already, a
// connect Kafka did not acknowledge. The connect is in Kafka before the
// socket opens, and the disconnect is in Kafka before it closes.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r, s.origins) {
		s.reject(w, r, connectForbidden, httpapi.Errorf(httpapi.CodeForbidden,
			"origin "+r.Header.Get("Origin")+" may not open sockets here (see --allowed-origins)"))
		return
	}
	id, err := s.identify(r)
	if err != nil {
		s.reject(w, r, connectUnauth, err)
		return
	}
	c, err := s.parse(r, id.User)
	if err != nil {
		s.reject(w, r, connectInvalid, err)
		return
	}
	if s.auth != nil {
		if err := id.Allow(auth.Connect, c.app, c.user); err != nil {
			s.reject(w, r, connectForbidden, err)
			return
		}
		c.expires = id.Expires
	}
	if err := s.reserve(r.Context(), c); err != nil {
		result := connectUnavailable
		switch {
		case codeOf(err) == httpapi.CodeSessionExists:
			result = connectDuplicate
		case codeOf(err) == httpapi.CodeTooManySockets:
			result = connectUserCap
		case errors.Is(err, errGatewayFull):
			result = connectGatewayCap
		}
		s.reject(w, r, result, err)
		return
	}
	defer s.forget(c)

	if err := s.connect(c); err != nil {
		c.end(ending{reason: gateway.ClientClosed})
		s.reject(w, r, connectUnavailable, err)
		// Answer now: the disconnect below may take as long again.
		_ = http.NewResponseController(w).Flush()
		// The connect may be in Kafka all the same.
		s.finish(c)
		return
	}
	// The socket outlives the server's read and write timeouts: the pings
	// bound it instead. Cleared before Accept, which writes its 101 under
	// the request's write deadline, passed when the connect took long.
	if err := httpapi.NoDeadlines(w); err != nil {
		s.log.Warn("clearing the connection's deadlines for a websocket", "err", err)
	}
	ws, err := websocket.Accept(recorder{ResponseWriter: w, c: c}, r, &websocket.AcceptOptions{OriginPatterns: s.origins})
	if err != nil { // Accept has answered the client
		s.metrics.connects.WithLabelValues(connectNotUpgraded).Inc()
		s.log.Warn("upgrading to a websocket", "app", c.app, "user", c.user, "session", c.session, "err", err)
		c.end(ending{reason: gateway.ClientClosed})
		s.finish(c)
		return
	}
	s.metrics.connects.WithLabelValues(connectOpened).Inc()
	s.serve(c, ws)
}

// identify authenticates the client by its token, when the server checks
// credentials: "Authorization: Bearer <token>", or the query parameter
// token (browsers cannot set headers on a WebSocket).
func (s *Server) identify(r *http.Request) (auth.Identity, error) {
	if s.auth == nil {
		return auth.Identity{}, nil
	}
	return s.auth.Authenticate(r)
}

// parse reads a session from the request and checks it. The user is
// user when the query leaves it out.
func (s *Server) parse(r *http.Request, user string) (*conn, error) {
	q := r.URL.Query()
	if q.Has("user") {
		user = q.Get("user")
	}
	ev := gateway.Event{Type: gateway.Connect, App: r.PathValue("app"),
		User: user, Session: q.Get("session"), Device: q.Get("device"), DeviceID: q.Get("device_id")}
	if err := ev.Validate(); err != nil {
		return nil, httpapi.Errorf(httpapi.CodeInvalid, err.Error())
	}
	if !isHandshake(r) {
		return nil, httpapi.Errorf(httpapi.CodeInvalid, "not a WebSocket handshake: send Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key")
	}
	return newConn(key{ev.App, ev.User, ev.Session}, ev.Device, ev.DeviceID, s.sendBuffer), nil
}

// isHandshake reports whether r asks for a WebSocket, so that a plain
// request is refused before anything is published.
func isHandshake(r *http.Request) bool {
	return hasToken(r.Header, "Connection", "upgrade") && hasToken(r.Header, "Upgrade", "websocket") &&
		r.Header.Get("Sec-WebSocket-Version") == "13" && r.Header.Get("Sec-WebSocket-Key") != ""
}

func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// reserve takes the session id of c on this gateway. A session with the
// same id that is ending here is waited for, so that the new connect is
// written after its disconnect.
func (s *Server) reserve(ctx context.Context, c *conn) error {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return httpapi.Errorf(httpapi.CodeUnavailable, "the gateway is shutting down: connect to another one")
		}
		old := s.conns[c.key]
		if old == nil {
			if err := s.checkCaps(c); err != nil {
				s.mu.Unlock()
				return err
			}
			s.conns[c.key] = c
			s.users[c.userKey()]++
			s.live[c] = struct{}{}
			s.handlers.Add(1)
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if !old.ended() {
			return httpapi.Errorf(httpapi.CodeSessionExists, fmt.Sprintf("session %q of user %q is already open on this gateway", c.session, c.user))
		}
		select {
		case <-old.released:
		case <-ctx.Done():
			return httpapi.Errorf(httpapi.CodeUnavailable, "gave up waiting for the previous connection of this session to close")
		}
	}
}

// errGatewayFull marks a connect refused because the gateway holds
// MaxSockets sessions.
var errGatewayFull = errors.New("gateway full")

// checkCaps refuses c when the gateway, or c's user here, holds as many
// sessions as allowed. Sessions count from their reservation to the
// release of their id. Called with s.mu held.
func (s *Server) checkCaps(c *conn) error {
	if len(s.conns) >= s.maxSockets {
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable,
			fmt.Sprintf("this gateway holds its most sockets (%d): connect to another one", s.maxSockets)), errGatewayFull)
	}
	if n := s.users[c.userKey()]; n >= s.maxPerUser {
		return httpapi.Errorf(httpapi.CodeTooManySockets,
			fmt.Sprintf("user %q has %d sockets open on this gateway, the most allowed: close one first", c.user, n))
	}
	return nil
}

// forget is the end of a session's handler.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// connect publishes the connect of c and marks it open, unless Shutdown
// ended it meanwhile.
func (s *Server) connect(c *conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), PublishTimeout)
	defer cancel()
	err := s.pub.Publish(ctx, gateway.Event{Type: gateway.Connect,
		App: c.app, User: c.user, Session: c.session, Device: c.device, DeviceID: c.deviceID})
	if err != nil {
		// The connect may be in Kafka all the same (its acknowledgement
		// lost): end it, or it would stay online as long as this gateway
		// keeps its lease. If the connect is not in Kafka, the disconnect
		// ends nothing; at worst it moves an offline user's last_seen.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), PublishTimeout)
			defer cancel()
			if err := s.pub.Publish(ctx, gateway.Event{Type: gateway.Disconnect,
				App: c.app, User: c.user, Session: c.session, Reason: gateway.ClientClosed}); err != nil {
				s.log.Error("publishing the disconnect of a refused connect", "app", c.app, "user", c.user, "session", c.session, "err", err)
			}
		}()
		return fmt.Errorf("%w (%w)", httpapi.Errorf(httpapi.CodeUnavailable, "kafka did not acknowledge the connect; retry"), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ended() {
		return httpapi.Errorf(httpapi.CodeUnavailable, "the gateway is shutting down: connect to another one")
	}
	c.open = true
	return nil
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, result string, err error) {
	s.metrics.connects.WithLabelValues(result).Inc()
	httpapi.WriteError(w, r, s.log, err)
}

// codeOf is the code of an *httpapi.Error in err.
func codeOf(err error) string {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

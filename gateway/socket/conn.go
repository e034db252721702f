package socket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas/status"
)

// key names a session on this gateway.
type key struct{ app, user, session string }

// userKey is a user of an app.
type userKey struct{ app, user string }

func (k key) userKey() userKey { return userKey{k.app, k.user} }

// outgoing is a message waiting in a connection's send buffer.
type outgoing struct {
	typ  string
	data []byte
}

// ending says how and why a session ended.
type ending struct {
	reason gateway.Reason
	status websocket.StatusCode
	text   string // the close reason the client reads, at most 123 bytes
	cause  string // the label of socket_disconnects_total
	// batched: Shutdown publishes the disconnect, with the others.
	batched bool
}

// conn is one session on this gateway, from the moment its id is reserved
// until its disconnect is published.
type conn struct {
	key
	device, deviceID string
	// expires is when the user token the session opened with expires:
	// the session ends then (zero: never).
	expires time.Time

	send     chan outgoing
	done     chan struct{} // closed by the first end
	released chan struct{} // closed once the session id is free again
	endOnce  sync.Once
	ending   ending // set by end, read once done is closed

	// open is set under the server's lock once Kafka has the connect.
	open bool

	// order is held while a report or the disconnect is published, so
	// that no report follows the disconnect (activity.go).
	order sync.Mutex
	// reported signals a report; activity is the latest, under mu.
	reported chan struct{}
	activity status.Activity

	mu  sync.Mutex
	raw net.Conn // the hijacked connection, to cut it short
}

func newConn(k key, device, deviceID string, sendBuffer int) *conn {
	return &conn{
		key: k, device: device, deviceID: deviceID,
		send:     make(chan outgoing, sendBuffer),
		reported: make(chan struct{}, 1),
		done:     make(chan struct{}),
		released: make(chan struct{}),
	}
}

// end ends the session, unless it has ended already; it reports whether
// this call ended it.
func (c *conn) end(e ending) bool {
	first := false
	c.endOnce.Do(func() {
		c.ending = e
		close(c.done)
		first = true
	})
	return first
}

func (c *conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// enqueue adds m to the send buffer without waiting; false when it is
// full.
func (c *conn) enqueue(m outgoing) bool {
	select {
	case c.send <- m:
		return true
	default:
		return false
	}
}

// cut closes the network connection under the socket, which ends every
// read and write on it at once.
func (c *conn) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw != nil {
		_ = c.raw.Close()
	}
}

// recorder is the ResponseWriter websocket.Accept upgrades: it keeps the
// hijacked connection in its conn, for cut.
type recorder struct {
	http.ResponseWriter
	c *conn
}

func (r recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.c.mu.Lock()
		r.c.raw = nc
		r.c.mu.Unlock()
	}
	return nc, rw, err
}

func (r recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// serve runs an upgraded session until it ends, publishes its disconnect
// (or lets Shutdown publish it), then closes the socket.
func (s *Server) serve(c *conn, ws *websocket.Conn) {
	s.metrics.sockets.Inc()
	defer s.metrics.sockets.Dec()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.read(ctx, c, ws) })
	wg.Go(func() { s.write(ctx, c, ws) })
	wg.Go(func() { s.ping(ctx, c, ws) })
	wg.Go(func() { s.report(c) })
	if !c.expires.IsZero() {
		wg.Go(func() { s.expire(c) })
	}
	<-c.done
	s.metrics.disconnects.WithLabelValues(c.ending.cause).Inc()
	s.log.Debug("socket closing", "app", c.app, "user", c.user, "session", c.session, "cause", c.ending.cause)
	// The disconnect goes to Kafka before the client learns of the close:
	// a client reconnecting elsewhere with the same session id then has
	// its connect written after it.
	s.finish(c)
	s.close(c, ws)
	cancel()
	wg.Wait()
}

// close closes the socket with the session's status and reason, waiting
// for the client's answer at most one ping interval.
func (s *Server) close(c *conn, ws *websocket.Conn) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = ws.Close(c.ending.status, c.ending.text)
	}()
	t := time.NewTimer(s.pingInterval)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		c.cut()
		<-closed
	}
}

// read reads what the client sends: its activity (activity.go), and
// nothing else; reading is also what answers the client's pings and sees
// its pongs and close.
func (s *Server) read(ctx context.Context, c *conn, ws *websocket.Conn) {
	for {
		typ, r, err := ws.Reader(ctx)
		switch {
		case err == nil && typ == websocket.MessageText:
			err = s.receive(c, r)
		case err == nil:
			s.metrics.messages.WithLabelValues(messageInvalid).Inc()
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			c.end(ending{reason: gateway.ClientClosed, status: websocket.StatusNormalClosure, cause: causeClientClosed})
			return
		}
	}
}

// write writes the send buffer to the socket, each message within the
// ping interval.
func (s *Server) write(ctx context.Context, c *conn, ws *websocket.Conn) {
	for {
		select {
		case <-c.done:
			return
		case m := <-c.send:
			if c.ended() { // both were ready: the end wins
				return
			}
			wctx, cancel := context.WithTimeout(ctx, s.pingInterval)
			err := ws.Write(wctx, websocket.MessageText, m.data)
			cancel()
			if err != nil {
				e := ending{reason: gateway.ClientClosed, status: websocket.StatusNormalClosure, cause: causeWriteFailed}
				if errors.Is(err, context.DeadlineExceeded) {
					e = ending{reason: gateway.Timeout, status: websocket.StatusPolicyViolation,
						text: fmt.Sprintf("a message not read within %s", s.pingInterval), cause: causeWriteFailed}
				}
				c.end(e)
				return
			}
			s.metrics.delivered.WithLabelValues(m.typ).Inc()
		}
	}
}

// expire ends the session when the token it opened with expires, so that
// a token lives no longer on a socket than on any other request; the
// client reconnects with a new one.
func (s *Server) expire(c *conn) {
	t := time.NewTimer(time.Until(c.expires))
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.end(ending{reason: gateway.ClientClosed, status: websocket.StatusPolicyViolation,
			text: "the token expired: reconnect with a new one", cause: causeTokenExpired})
	}
}

// ping pings the client every ping interval and ends the session when a
// pong does not come back within the next.
func (s *Server) ping(ctx context.Context, c *conn, ws *websocket.Conn) {
	t := time.NewTimer(s.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.pingInterval)
		err := ws.Ping(pctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			c.end(ending{reason: gateway.Timeout, status: websocket.StatusPolicyViolation,
				text: fmt.Sprintf("no pong within %s", s.pingInterval), cause: causeTimeout})
			return
		}
		if err != nil { // closed meanwhile; read ends the session
			return
		}
		t.Reset(s.pingInterval)
	}
}

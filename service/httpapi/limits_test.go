package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve serves h within lim on a local port until the test ends.
func serve(t *testing.T, lim Limits, h http.Handler) string {
	t.Helper()
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lim.Serve(ctx, l, h, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// decodeAndAnswer reads a JSON body and answers 200.
var decodeAndAnswer = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	if err := DecodeJSON(w, r, &v); err != nil {
		WriteError(w, r, slog.New(slog.NewTextHandler(io.Discard, nil)), err)
		return
	}
	WriteJSON(w, http.StatusOK, v)
})

// TestSlowBodyIsCut trickles a body one byte at a time: the server must
// end the request (answer or close) when ReadTimeout runs out, long before
// the body is complete.
func TestSlowBodyIsCut(t *testing.T) {
	addr := serve(t, Limits{ReadTimeout: 200 * time.Millisecond}, decodeAndAnswer)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 400 // 400 bytes at 1 per 25 ms: 10 s to send it whole
	body := `{"a":"` + strings.Repeat("x", size-8) + `"}`
	if _, err := fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn) // until the server closes
		ended <- string(b)
	}()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; sent < len(body); sent++ {
		select {
		case answer := <-ended:
			if strings.Contains(answer, " 200 ") {
				t.Fatalf("the server answered 200 to a body it could not have read whole:\n%s", answer)
			}
			t.Logf("cut after %d of %d bytes: %q", sent, len(body), firstLine(answer))
			return
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{body[sent]}); err != nil {
			t.Logf("cut after %d of %d bytes: %v", sent, len(body), err)
			return
		}
	}
	t.Fatalf("the server read a body trickled over %s with a read timeout of 200ms", time.Duration(len(body))*25*time.Millisecond)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestFastBodyPasses is the control of TestSlowBodyIsCut: the same body
// sent at once is read and answered.
func TestFastBodyPasses(t *testing.T) {
	addr := serve(t, Limits{ReadTimeout: 200 * time.Millisecond}, decodeAndAnswer)
	resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(`{"a":"`+strings.Repeat("x", 392)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
}

// TestHeaderFlood sends headers over MaxHeaderBytes: 431, handler not run.
func TestHeaderFlood(t *testing.T) {
	var ran atomic.Bool
	addr := serve(t, Limits{MaxHeaderBytes: 4 << 10}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Store(true) }))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req strings.Builder
	req.WriteString("GET / HTTP/1.1\r\nHost: x\r\n")
	for i := range 200 {
		fmt.Fprintf(&req, "X-Flood-%d: %s\r\n", i, strings.Repeat("y", 100))
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || ran.Load() {
		t.Fatalf("status %d (handler ran: %v), want 431 without running the handler", resp.StatusCode, ran.Load())
	}
}

// TestIdleConnectionIsClosed keeps a connection open after one request:
// the server closes it after IdleTimeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	addr := serve(t, Limits{IdleTimeout: 100 * time.Millisecond}, decodeAndAnswer)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The server closes the idle connection; the bound is a safety net.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("reading the idle connection: %v, want EOF (closed by the server)", err)
	}
}

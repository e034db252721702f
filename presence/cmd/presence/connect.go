package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/presence-im/presence/service/cli"
)

// runConnect is a WebSocket client of the gateway server, to try the push
// side by hand: it opens a session and prints each notification it
// receives, one JSON object per line, until it is stopped (which closes
// the session).
func runConnect(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gatewayAddr := fs.String("gateway-addr", "127.0.0.1:8090", "address of the gateway server")
	app := fs.String("app", "chat", "app id")
	user := fs.String("user", "", "user id (required without --token; with one, the token's user)")
	session := fs.String("session", "", "session id (default: <user>-<device>)")
	device := fs.String("device", "web", "kind of client: ios, android, web, ...")
	deviceID := fs.String("device-id", "", "physical device id (optional)")
	token := fs.String("token", "", "user token (JWT) when the gateway checks credentials; sent as Authorization: Bearer")
	cli.Usage(fs, "presence connect: open a session over WebSocket and print its notifications")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	if *user == "" && *token == "" {
		return errors.New("--user is required (or --token, whose user connects)")
	}
	if *session == "" {
		*session = strings.TrimPrefix(*user+"-"+*device, "-")
	}
	q := url.Values{"session": {*session}, "device": {*device}}
	if *user != "" {
		q.Set("user", *user)
	}
	if *deviceID != "" {
		q.Set("device_id", *deviceID)
	}
	u := "ws://" + *gatewayAddr + "/v1/apps/" + url.PathEscape(*app) + "/ws?" + q.Encode()
	var opts websocket.DialOptions
	if *token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + *token}}
	}
	conn, resp, err := websocket.Dial(ctx, u, &opts)
	if err != nil {
		if resp != nil && resp.Body != nil {
			body, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("connecting to %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
		}
		return fmt.Errorf("connecting to %s: %w", u, err)
	}
	defer conn.CloseNow()
	fmt.Fprintf(stderr, "connected as %s/%s (%s); Ctrl-C closes the session\n", cmp.Or(*user, "the token's user"), *session, *device)
	for {
		_, msg, err := conn.Read(ctx)
		if ctx.Err() != nil {
			return conn.Close(websocket.StatusNormalClosure, "bye")
		}
		if err != nil {
			return fmt.Errorf("reading notifications: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", msg)
	}
}

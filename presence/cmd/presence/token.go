package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/presence-im/presence/service/auth"
	"github.com/presence-im/presence/service/cli"
)

// runToken prints a user token (HS256 JWT) signed with the first of an
// app's hs256_secrets in the auth file, to try an authenticated setup by
// hand. Real deployments mint tokens in their own login service.
func runToken(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("auth", "", "auth file holding the app's user_tokens.hs256_secrets (required)")
	app := fs.String("app", "chat", "app id")
	user := fs.String("user", "", "user id, the token's sub (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	cli.Usage(fs, "presence token: print a user token (HS256 JWT) signed with the app's first hs256 secret")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	switch {
	case *file == "":
		return errors.New("--auth is required: the auth file holding the app's hs256_secrets")
	case *user == "":
		return errors.New("--user is required")
	case fs.NArg() > 0:
		return fmt.Errorf("presence token takes no arguments, got %q", fs.Args())
	}
	a, err := auth.New(auth.Config{File: *file, Logger: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		return err
	}
	tok, err := a.Mint(*app, *user, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

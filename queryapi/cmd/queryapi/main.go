// Command queryapi serves Presence lookups over HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/presence-im/presence/queryapi"
	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/service/flagenv"
	"github.com/presence-im/presence/service/httpapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "queryapi:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("queryapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL")
	keyPrefix := fs.String("key-prefix", redisstore.DefaultPrefix, "prefix of every Redis key")
	addr := fs.String("addr", ":8080", "HTTP listen address")
	flagenv.Usage(fs, "queryapi: serves Presence lookups over HTTP")
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	store, err := redisstore.Open(ctx, *redisURL, redisstore.Options{Prefix: *keyPrefix})
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := queryapi.New(queryapi.Config{Store: store, Logger: log})
	if err != nil {
		return err
	}
	l, err := httpapi.Listen(*addr)
	if err != nil {
		return err
	}
	log.Info("queryapi ready", "addr", l.Addr().String())
	return httpapi.Serve(ctx, l, s.Handler(), log)
}

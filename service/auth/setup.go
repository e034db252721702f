package auth

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
)

// ErrNoAuth is the error of a server started with neither --auth nor
// --insecure.
var ErrNoAuth = errors.New("no --auth file: give --auth FILE (or PRESENCE_AUTH) with the apps' keys and user token secrets, or --insecure to let anyone call this server as any app, user and gateway")

// Setup is what a server command does with its --auth and --insecure
// flags. With a file, it loads it and re-reads it on every SIGHUP until
// ctx ends. Without one, it returns a nil Authenticator (every caller
// allowed) and logs a warning when insecure is set, and ErrNoAuth when it
// is not.
func Setup(ctx context.Context, file string, insecure bool, log *slog.Logger) (*Authenticator, error) {
	if file == "" {
		if !insecure {
			return nil, ErrNoAuth
		}
		log.Warn("serving without authentication: anyone can call the API as any app, user and gateway (start with --auth FILE to check credentials)")
		return nil, nil
	}
	a, err := New(Config{File: file, Logger: log})
	if err != nil {
		return nil, err
	}
	a.ReloadOnSignal(ctx, syscall.SIGHUP)
	a.log.Info("checking credentials; SIGHUP re-reads the file", "file", file, "apps", len(a.current().apps))
	return a, nil
}

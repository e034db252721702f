package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run is a command's body: it parses args (falling back to getenv), writes
// to stdout and stderr, and returns when ctx ends or its work fails.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs run with the process's arguments and environment until it
// returns or SIGINT or SIGTERM arrives, then exits: 0 on success, --help
// or --version (the version line on stdout), 1 with the error on stderr
// otherwise.
func Main(name string, run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(name, err, os.Stdout, os.Stderr))
}

// exitCode reports how run ended, as Main describes, and returns the
// process's exit code.
func exitCode(name string, err error, stdout, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrVersion):
		fmt.Fprintln(stdout, VersionLine(name))
		return 0
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// Package clitest checks what every command built on package cli shares.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/presence-im/presence/service/cli"
)

// Version checks that --version stops the command run (called with args
// before it: settings the command would otherwise check, or use to reach
// Kafka and Redis) before it reads any other setting, with cli.ErrVersion
// and nothing written (cli.Main then prints the version and exits 0), and
// that --help lists it.
func Version(t *testing.T, name string, run cli.Run, args ...string) {
	t.Helper()
	env := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append(args, "--version"), env, &stdout, &stderr)
	if !errors.Is(err, cli.ErrVersion) || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("%s --version: %v, stdout %q, stderr %q; want cli.ErrVersion and nothing written", name, err, stdout.String(), stderr.String())
	}
	stderr.Reset()
	run(context.Background(), []string{"--help"}, env, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "  --version\n") {
		t.Errorf("%s --help does not list --version:\n%s", name, stderr.String())
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/presence-im/presence/service/cli"
)

// TestVersion: --version stops queryapi before it reads any other setting or
// reaches Kafka or Redis (cli.Main then prints the version and exits 0),
// and --help lists it.
func TestVersion(t *testing.T) {
	env := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--brokers", "127.0.0.1:1", "--version"}, env, &stdout, &stderr)
	if !errors.Is(err, cli.ErrVersion) || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("queryapi --version: %v, stdout %q, stderr %q; want cli.ErrVersion and nothing written", err, stdout.String(), stderr.String())
	}
	run(context.Background(), []string{"--help"}, env, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "  --version\n") {
		t.Errorf("queryapi --help does not list --version:\n%s", stderr.String())
	}
}

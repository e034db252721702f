package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/presence-im/presence/service/cli"
)

// TestVersion: presence --version, and --version on each subcommand, stop
// before anything starts (cli.Main then prints the version and exits 0);
// the usage and each subcommand's --help name it.
func TestVersion(t *testing.T) {
	env := func(string) string { return "" }
	for _, args := range [][]string{
		{"--version"}, {"-version"}, {"version"},
		{"dev", "--version"}, {"replay", "--version"}, {"import-friends", "--version"},
		{"connect", "--version"}, {"token", "--version"}, {"bench", "--version"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, env, &stdout, &stderr)
		if !errors.Is(err, cli.ErrVersion) || stdout.Len() != 0 || stderr.Len() != 0 {
			t.Errorf("presence %q: %v, stdout %q, stderr %q; want cli.ErrVersion and nothing written", args, err, stdout.String(), stderr.String())
		}
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"help"}, env, &stdout, &stdout)
	if !strings.Contains(stdout.String(), "presence --version") {
		t.Errorf("presence help does not say how to get the version:\n%s", stdout.String())
	}
	for _, sub := range []string{"dev", "replay", "import-friends", "connect", "token", "bench"} {
		var stderr bytes.Buffer
		run(context.Background(), []string{sub, "--help"}, env, &stderr, &stderr)
		if !strings.Contains(stderr.String(), "  --version\n") {
			t.Errorf("presence %s --help does not list --version:\n%s", sub, stderr.String())
		}
	}
}

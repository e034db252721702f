package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presence-im/presence/service/auth"
)

// TestRefusesToServeOpenly: without --auth, queryapi starts only with
// --insecure, and a bad auth file stops it with the file's error.
func TestRefusesToServeOpenly(t *testing.T) {
	env := func(string) string { return "" }
	err := run(context.Background(), []string{"--brokers", "127.0.0.1:1", "--addr", "127.0.0.1:0"}, env, io.Discard, io.Discard)
	if !errors.Is(err, auth.ErrNoAuth) || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("without --auth: %v, want an error telling to give --auth or --insecure", err)
	}
	missing := filepath.Join(t.TempDir(), "auth.json")
	err = run(context.Background(), []string{"--brokers", "127.0.0.1:1", "--auth", missing}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "reading auth file") {
		t.Errorf("with a missing auth file: %v, want it named", err)
	}
	err = run(context.Background(), []string{"--brokers", "127.0.0.1:1"}, func(k string) string {
		return map[string]string{"PRESENCE_AUTH": missing}[k]
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "reading auth file") {
		t.Errorf("with PRESENCE_AUTH naming a missing file: %v, want it read", err)
	}
}

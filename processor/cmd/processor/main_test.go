package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The limits on hostile records and the group settings are flags with
// environment fallbacks, and a limit that is not positive is refused
// before anything starts.
func TestLimitFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"--help"}, func(string) string { return "" }, &stdout, &stderr)
	for _, f := range []string{"max-record-bytes", "max-clock-skew", "max-gateway-lease", "stall-timeout", "instance-id", "session-timeout"} {
		if !strings.Contains(stderr.String(), "--"+f+" (PRESENCE_") {
			t.Errorf("processor --help does not list --%s:\n%s", f, stderr.String())
		}
	}
	for _, args := range [][]string{
		{"--max-record-bytes", "0"},
		{"--max-clock-skew", "-1s"},
		{"--max-gateway-lease", "0s"},
		{"--stall-timeout", "0s"},
		{"--session-timeout", "0s"},
	} {
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("processor %q: %v, want must be positive", args, err)
		}
	}
	for _, id := range []string{"pod 0", "..", "pod/0", "pödö", strings.Repeat("p", 250)} {
		err := run(context.Background(), []string{"--instance-id", id, "--brokers", "127.0.0.1:1", "--redis-url", "redis://127.0.0.1:1"},
			func(string) string { return "" }, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "instance id") {
			t.Errorf("processor --instance-id %.20q: %v, want the id refused", id, err)
		}
	}
	err := run(context.Background(), nil, func(k string) string {
		if k == "PRESENCE_STALL_TIMEOUT" {
			return "0s"
		}
		return ""
	}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "must be positive") {
		t.Errorf("PRESENCE_STALL_TIMEOUT=0s: %v, want must be positive", err)
	}
}

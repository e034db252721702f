package cli

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	env := map[string]string{
		"PRESENCE_REDIS_URL":   "redis://from-env",
		"PRESENCE_OFFLINE_TTL": "2h",
		"PRESENCE_ADDR":        "ignored-because-given",
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	redisURL := fs.String("redis-url", "", "")
	ttl := fs.Duration("offline-ttl", time.Hour, "")
	addr := fs.String("addr", ":1", "")
	other := fs.String("other", "default", "")
	if err := Parse(fs, []string{"--addr", ":2"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *redisURL != "redis://from-env" || *ttl != 2*time.Hour || *addr != ":2" || *other != "default" {
		t.Fatalf("got redis-url=%q offline-ttl=%v addr=%q other=%q", *redisURL, *ttl, *addr, *other)
	}
}

func TestParseBadEnv(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("offline-ttl", time.Hour, "")
	err := Parse(fs, nil, func(k string) string { return map[string]string{"PRESENCE_OFFLINE_TTL": "soon"}[k] })
	if err == nil {
		t.Fatal("a bad duration in the environment was accepted")
	}
}

package redisstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/presence-im/presence/redisstore"
	"github.com/presence-im/presence/redisstore/redistest"
)

const secret = "Sup3r-secret"

// Neither a URL printed for a log nor the error of a URL that does not
// parse holds its password, whatever is wrong with it.
func TestURLErrorsHideThePassword(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		parses    bool
		want      string // in the redacted URL or the error
	}{
		{"valid", "redis://user:" + secret + "@h:6379/0", true, "redis://user:xxxxx@h:6379/0"},
		{"password only", "redis://:" + secret + "@h:6379", true, "redis://:xxxxx@h:6379"},
		{"tls", "rediss://:" + secret + "@h:6380/2", true, "rediss://:xxxxx@h:6380/2"},
		{"bad escape in password", "redis://:" + secret + "%zz@h:6379", false, "percent-encode the user name and password"},
		{"slash in password", "redis://:" + secret + "/x@h:6379", false, "redis://xxxxx@h:6379"},
		{"hash in password", "redis://:12345#" + secret + "@h:6379", true, "redis://xxxxx@h:6379"},
		{"bad port", "redis://:" + secret + "@h:port", false, "redis://xxxxx@h:port"},
		{"bad database", "redis://:" + secret + "@h:6379/db", false, `invalid database number: "db"`},
		{"bad scheme", "http://:" + secret + "@h:6379", false, "invalid URL scheme"},
		{"bad option", "redis://:" + secret + "@h:6379?dial_timeout=soon", false, "redis://:xxxxx@h:6379"},
		{"no password", "redis://h:port", false, `invalid port ":port"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redacted := redisstore.RedactURL(tc.url)
			_, err := redisstore.ParseURL(tc.url)
			if (err == nil) != tc.parses {
				t.Fatalf("ParseURL(%q) = %v, want parsed %v", tc.url, err, tc.parses)
			}
			text := redacted
			if err != nil {
				text += " " + err.Error()
			}
			if !strings.Contains(text, tc.want) {
				t.Errorf("redacted %q, error %v: want %q in them", redacted, err, tc.want)
			}
			if strings.Contains(text, secret) {
				t.Errorf("redacted %q, error %v: they hold the password", redacted, err)
			}
		})
	}
}

// A Redis that requires a password serves a store opened with it, the
// default user's or an ACL user's, and refuses one opened without it or
// with another, with an error that says so and holds no password.
func TestOpenWithPassword(t *testing.T) {
	srv := redistest.NewServer(t, redistest.Options{Password: secret, Users: map[string]string{"presence": secret + "-acl"}})
	ctx := context.Background()
	for _, tc := range []struct {
		name, url string
		want      string // in the error; "" when Open must work
	}{
		{"default user", "redis://:" + secret + "@" + srv.Addr + "/0", ""},
		{"acl user", "redis://presence:" + secret + "-acl@" + srv.Addr + "/0", ""},
		{"no password", "redis://" + srv.Addr + "/0", "NOAUTH"},
		{"wrong password", "redis://:not-" + secret + "@" + srv.Addr + "/0", "WRONGPASS"},
		{"acl user with the default password", "redis://presence:" + secret + "@" + srv.Addr + "/0", "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := redisstore.Open(ctx, tc.url, redisstore.Options{Prefix: redistest.Prefix(t)})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				if err := s.ApplyFriends(ctx, redisstore.Owner{}, []redisstore.FriendChange{{App: "chat", User: "ann", Friend: "bob"}}); err != nil {
					t.Fatalf("writing through the store: %v", err)
				}
				if got, err := s.Friends(ctx, "chat", "ann"); err != nil || len(got) != 1 || got[0] != "bob" {
					t.Fatalf("ann's friends read back: %q, %v; want [bob]", got, err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("Open worked")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), srv.Addr) {
				t.Errorf("error %q does not say %s at %s", err, tc.want, srv.Addr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds a password", err)
			}
		})
	}
}

package compat_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/presence-im/presence/queryapi/compat"
)

// Mounted on a chi router, the compat routes are listed by chi.Walk,
// each at the contract's path and at the Java IM's own.
func TestRoutesWalk(t *testing.T) {
	r := chi.NewRouter()
	c, err := compat.New(compat.Config{API: r})
	if err != nil {
		t.Fatal(err)
	}
	r.Mount("/compat", c)
	var routes []string
	err = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+strings.ReplaceAll(route, "/*/", "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /compat/leancloud/1.1/functions/getOnOffStatus"}
	for _, prefix := range []string{"/compat/im/v1/user/status/", "/compat/im/v1/user/"} {
		for _, name := range []string{"queryUserOnlineStatus", "queryFriendOnlineStatus", "subscribeUserOnlineStatus", "setUserCustomerStatus"} {
			want = append(want, "POST "+prefix+name)
		}
	}
	slices.Sort(routes)
	slices.Sort(want)
	if !slices.Equal(routes, want) {
		t.Errorf("routes\n%s\nwant\n%s", strings.Join(routes, "\n"), strings.Join(want, "\n"))
	}
	if _, err := compat.New(compat.Config{}); err == nil {
		t.Error("New without an API to call: no error")
	}
}

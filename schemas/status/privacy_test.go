package status

import (
	"testing"
	"time"
)

// Mask shows each viewer what the rules allow: the truth to the user, an
// invisible user offline with no session (last seen when it hid) to the
// others, and last seen only to whom the rule names.
func TestMask(t *testing.T) {
	seen := millis(1_000)
	hidden := millis(5_000)
	online := &Status{User: "u", State: Online, Sessions: []Session{{Session: "s1"}}, Version: 7}
	offline := &Status{User: "u", State: Offline, Sessions: []Session{}, LastSeen: &seen, Version: 8}
	type want struct {
		state    string
		sessions int
		lastSeen *Time
	}
	for _, tc := range []struct {
		name   string
		p      Privacy
		st     *Status
		viewer Viewer
		want   want
	}{
		{"default online", Privacy{LastSeen: Everyone}, online, Anyone, want{Online, 1, nil}},
		{"default offline", Privacy{}, offline, Anyone, want{Offline, 0, &seen}},
		{"invisible to anyone", Privacy{Invisible: true, LastSeen: Everyone, HiddenSince: 5_000}, online, Anyone, want{Offline, 0, &hidden}},
		{"invisible to a friend", Privacy{Invisible: true, LastSeen: Everyone, HiddenSince: 5_000}, online, Friend, want{Offline, 0, &hidden}},
		{"invisible to self", Privacy{Invisible: true, LastSeen: Nobody}, online, Self, want{Online, 1, nil}},
		{"invisible, never seen", Privacy{Invisible: true, LastSeen: Everyone}, online, Friend, want{Offline, 0, nil}},
		{"invisible, friends only, to anyone", Privacy{Invisible: true, LastSeen: Friends, HiddenSince: 5_000}, online, Anyone, want{Offline, 0, nil}},
		{"invisible, friends only, to a friend", Privacy{Invisible: true, LastSeen: Friends, HiddenSince: 5_000}, online, Friend, want{Offline, 0, &hidden}},
		{"friends only, to anyone", Privacy{LastSeen: Friends}, offline, Anyone, want{Offline, 0, nil}},
		{"friends only, to a friend", Privacy{LastSeen: Friends}, offline, Friend, want{Offline, 0, &seen}},
		{"nobody, to a friend", Privacy{LastSeen: Nobody}, offline, Friend, want{Offline, 0, nil}},
		{"nobody, to self", Privacy{LastSeen: Nobody}, offline, Self, want{Offline, 0, &seen}},
		{"invisible since version 3, to a friend", Privacy{Invisible: true, LastSeen: Everyone, HiddenSince: 5_000, HiddenVersion: 3}, online, Friend, want{Offline, 0, &hidden}},
		{"invisible since version 3, to self", Privacy{Invisible: true, LastSeen: Everyone, HiddenVersion: 3}, online, Self, want{Online, 1, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := *tc.st
			got := tc.p.Mask(tc.st, tc.viewer)
			version := tc.st.Version // an invisible user's, to others: the version it went invisible at
			if tc.p.Invisible && tc.p.HiddenVersion != 0 && tc.viewer != Self {
				version = tc.p.HiddenVersion
			}
			if got.State != tc.want.state || len(got.Sessions) != tc.want.sessions || got.Version != version {
				t.Errorf("Mask = %s with %d sessions, version %d; want %s with %d, version %d",
					got.State, len(got.Sessions), got.Version, tc.want.state, tc.want.sessions, version)
			}
			switch {
			case (got.LastSeen == nil) != (tc.want.lastSeen == nil):
				t.Errorf("last seen %v, want %v", got.LastSeen, tc.want.lastSeen)
			case got.LastSeen != nil && !got.LastSeen.Equal(tc.want.lastSeen.Time):
				t.Errorf("last seen %v, want %v", got.LastSeen, tc.want.lastSeen)
			}
			if tc.st.State != before.State || len(tc.st.Sessions) != len(before.Sessions) || tc.st.LastSeen != before.LastSeen {
				t.Errorf("Mask changed the status it was given")
			}
		})
	}
	if (Privacy{}).Mask(nil, Anyone) != nil {
		t.Errorf("Mask(nil) is not nil")
	}
}

// NeedsFriendship is true only where a friend sees more than anyone.
func TestNeedsFriendship(t *testing.T) {
	online := &Status{State: Online}
	offline := &Status{State: Offline}
	for _, tc := range []struct {
		p    Privacy
		st   *Status
		want bool
	}{
		{Privacy{}, offline, false},
		{Privacy{LastSeen: Nobody}, offline, false},
		{Privacy{LastSeen: Friends}, online, false},
		{Privacy{LastSeen: Friends}, offline, true},
		{Privacy{LastSeen: Friends, Invisible: true}, online, true},
		{Privacy{LastSeen: Friends}, nil, false},
	} {
		if got := tc.p.NeedsFriendship(tc.st); got != tc.want {
			t.Errorf("%+v.NeedsFriendship(%s) = %v, want %v", tc.p, tc.st.stateOrNil(), got, tc.want)
		}
	}
}

func (st *Status) stateOrNil() string {
	if st == nil {
		return "nil"
	}
	return st.State
}

// Encode and DecodePrivacy round trip; anything else is refused.
func TestPrivacyEncoding(t *testing.T) {
	for _, p := range []Privacy{
		{LastSeen: Everyone},
		{Invisible: true, LastSeen: Friends, HiddenSince: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()},
		{Invisible: true, LastSeen: Friends, HiddenSince: 1, HiddenVersion: 42},
		{LastSeen: Nobody},
	} {
		got, err := DecodePrivacy(p.Encode())
		if err != nil || got != p {
			t.Errorf("DecodePrivacy(%q) = %+v, %v; want %+v", p.Encode(), got, err, p)
		}
		if back := PrivacyFromProto(p.Proto()); back != p {
			t.Errorf("PrivacyFromProto(Proto(%+v)) = %+v", p, back)
		}
	}
	for _, s := range []string{"", "1", "1:friends", "2:friends:0", "1:all:0", "1:friends:x", "0:everyone:1:x", "0:everyone:1:-2", "0:everyone:1:2:3"} {
		if p, err := DecodePrivacy(s); err == nil {
			t.Errorf("DecodePrivacy(%q) = %+v, want an error", s, p)
		}
	}
}

package compat

import "testing"

// Ids that read as a Java Integer become numbers in the seed's
// UserSession; any other stays a string (or null).
func TestSeedNumbers(t *testing.T) {
	for s, want := range map[string]int{"0": 0, "7": 7, "10000": 10000, "2147483647": 2147483647,
		"2147483648": -1, "-1": -1, "+1": -1, "007": -1, "1e3": -1, " 1": -1, "": -1, "chat": -1} {
		n, ok := number(s)
		if ok != (want >= 0) || ok && n != want {
			t.Errorf("number(%q) = %d, %v; want %d", s, n, ok, want)
		}
	}
	for device, want := range map[string]int{"webApi": 0, "web": 1, "iOS": 2, "ios": 2, "android": 3,
		"windows": 4, "mac": 5, "3": 3, "17": 17, "desktop": -1, "-2": -1, "": -1} {
		got := clientType(device)
		if (got == nil) != (want < 0) || got != nil && *got != want {
			t.Errorf("clientType(%q) = %v, want %d", device, got, want)
		}
	}
}

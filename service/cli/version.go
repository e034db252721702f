package cli

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release the build named, set by the linker: the
// Makefile's build passes
//
//	-ldflags "-X github.com/presence-im/presence/service/cli.version=$(VERSION)"
//
// with VERSION from git describe. It is a package variable because the
// linker can set nothing else; nothing writes it at run time.
var version string

// ErrVersion is what Parse returns for --version: like flag.ErrHelp, the
// command stops there and Main prints the version and exits 0.
var ErrVersion = errors.New("version requested")

// Version is the release of this binary: the one the build set, else the
// version or VCS revision Go stamped into it, else "dev" (go test, or a
// build outside a git checkout).
func Version() string {
	info, ok := debug.ReadBuildInfo()
	return versionOf(version, info, ok)
}

func versionOf(set string, info *debug.BuildInfo, ok bool) string {
	if set != "" {
		return set
	}
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "-dirty"
	}
	return rev
}

// VersionLine is what --version prints: "gateway v1.2.0 (go1.26.8)".
func VersionLine(name string) string {
	return fmt.Sprintf("%s %s (%s)", name, Version(), runtime.Version())
}

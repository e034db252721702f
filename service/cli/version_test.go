package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	for _, tc := range []struct {
		name, set string
		info      *debug.BuildInfo
		ok        bool
		want      string
	}{
		{"the build's wins", "v1.2.0-3-gabc1234", vcs("0123456789abcdef", "true"), true, "v1.2.0-3-gabc1234"},
		{"module version", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, true, "v1.2.0"},
		{"revision", "", vcs("0123456789abcdef0123", "false"), true, "0123456789ab"},
		{"dirty revision", "", vcs("0123456789abcdef0123", "true"), true, "0123456789ab-dirty"},
		{"go test", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"no build info", "", nil, false, "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionOf(tc.set, tc.info, tc.ok); got != tc.want {
				t.Errorf("version %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	env := func(k string) string { return map[string]string{"PRESENCE_VERSION": "true"}[k] }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := Parse(fs, nil, env); err != nil {
		t.Fatalf("PRESENCE_VERSION in the environment asked for the version: %v", err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("addr", "", "listen address")
	if err := Parse(fs, []string{"--addr", ":1", "--version"}, env); !errors.Is(err, ErrVersion) {
		t.Fatalf("--version: %v, want ErrVersion", err)
	}

	var help bytes.Buffer
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&help)
	Usage(fs, "t: a command")
	if err := Parse(fs, []string{"--help"}, env); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(help.String(), "  --version\n      print the version and exit\n") || strings.Contains(help.String(), "PRESENCE_VERSION") {
		t.Errorf("--help does not list --version alone:\n%s", help.String())
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name           string
		err            error
		code           int
		stdout, stderr string
	}{
		{"success", nil, 0, "", ""},
		{"help", flag.ErrHelp, 0, "", ""},
		{"version", ErrVersion, 0, "gateway dev (" + runtime.Version() + ")\n", ""},
		{"failure", errors.New("listening on :1: refused"), 1, "", "gateway: listening on :1: refused\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := exitCode("gateway", tc.err, &stdout, &stderr); code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

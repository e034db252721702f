package deploy

// The version a build stamps: make build and the Dockerfile name the
// variable --version and presence_build_info report.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ldflagsVar matches the -X of a -ldflags: the variable it sets.
var ldflagsVar = regexp.MustCompile(`-X ([A-Za-z0-9_./-]+)=`)

// TestBuildVersion builds every binary the Makefile's way with a version
// of its own, and each reports it: a renamed or moved variable would leave
// them saying "dev". The Dockerfile must set the same variable.
func TestBuildVersion(t *testing.T) {
	root := filepath.Dir(mustGetwd(t))
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	vars := ldflagsVar.FindAllStringSubmatch(string(makefile), -1)
	if len(vars) != 1 {
		t.Fatalf("the Makefile sets %d variables with -X, want 1 (the version)", len(vars))
	}
	variable := vars[0][1]
	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dvars := ldflagsVar.FindAllStringSubmatch(string(dockerfile), -1)
	if len(dvars) != len(binaries) {
		t.Errorf("the Dockerfile sets the version of %d binaries, want %d", len(dvars), len(binaries))
	}
	for _, v := range dvars {
		if v[1] != variable {
			t.Errorf("the Dockerfile sets %s, the Makefile %s", v[1], variable)
		}
	}

	const version = "v0.0.0-buildcheck"
	bin := t.TempDir()
	build := exec.Command("make", "--no-print-directory", "-C", root, "build", "BIN="+bin, "VERSION="+version)
	// Not the jobserver of a make test running this test.
	build.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, b := range binaries {
		out, err := exec.Command(filepath.Join(bin, b.name), "--version").Output()
		if err != nil {
			t.Errorf("%s --version: %v", b.name, err)
			continue
		}
		want := regexp.MustCompile(`^` + b.name + ` ` + regexp.QuoteMeta(version) + ` \(go[0-9][^)]*\)\n$`)
		if !want.Match(out) {
			t.Errorf("%s --version printed %q, want %q", b.name, out, b.name+" "+version+" (go…)")
		}
	}
}

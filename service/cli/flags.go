// Package cli is what every Presence command shares: flags with
// environment fallbacks and the life of a main function.
//
// A flag not given on the command line takes the value of PRESENCE_<NAME>,
// its name upper-cased with '-' as '_' (--redis-url reads
// PRESENCE_REDIS_URL). Every command takes --version too (not read from
// the environment): it prints the binary's version (see Version) and exits 0.
package cli

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable that backs the flag name.
func EnvName(name string) string {
	return "PRESENCE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// versionFlag is the flag every command takes to print its version.
const versionFlag = "version"

// Parse parses args into fs, then sets every flag absent from args from
// its environment variable, read with getenv. It adds --version to fs and
// returns ErrVersion when it is given.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	showVersion := fs.Bool(versionFlag, false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		return ErrVersion
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || f.Name == versionFlag || err != nil {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// Usage makes fs list, after each flag, the environment variable behind it.
func Usage(fs *flag.FlagSet, summary string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\n\nFlags (each also read from the environment variable shown):\n", summary)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == versionFlag {
				fmt.Fprintf(out, "  --%s\n      %s\n", f.Name, f.Usage)
				return
			}
			fmt.Fprintf(out, "  --%s (%s)\n", f.Name, EnvName(f.Name))
			fmt.Fprintf(out, "      %s", f.Usage)
			if f.DefValue != "" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
}

// List splits a comma-separated flag value, dropping blanks: "" is no
// items.
func List(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

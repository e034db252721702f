// Package deploy holds the container, Prometheus and Grafana files of the
// Presence stack. Its test keeps docker-compose.yml honest without a Docker
// engine: every flag and PRESENCE_* variable a service is given must be one
// its binary takes, the Dockerfile must build what the services run, and
// Prometheus must scrape the ports the services listen on. The Kubernetes
// manifests of kubernetes/ are kept honest the same way, without a cluster
// (kubernetes_test.go).
package deploy

import (
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// binary is one command of the repository and the arguments that come
// before its flags (a subcommand).
type binary struct {
	name string
	pkg  string
	sub  []string
}

var binaries = []binary{
	{name: "presence", pkg: "./presence/cmd/presence", sub: []string{"dev"}},
	{name: "gateway", pkg: "./gateway/cmd/gateway"},
	{name: "processor", pkg: "./processor/cmd/processor"},
	{name: "queryapi", pkg: "./queryapi/cmd/queryapi"},
}

// services are the binaries docker-compose.yml must run.
var services = []string{"gateway", "processor", "queryapi"}

// flagInfo is one flag as --help prints it.
type flagInfo struct {
	env string
	def string
}

func TestCompose(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	flags := helpFlags(t, root)
	compose := readCompose(t, filepath.Join(root, "docker-compose.yml"))
	ours := ourServices(t, compose)

	for _, b := range binaries {
		t.Run("help/"+b.name, func(t *testing.T) {
			fl := flags[b.name]
			if len(fl) == 0 {
				t.Fatalf("%s --help lists no flags", strings.Join(append([]string{b.name}, b.sub...), " "))
			}
			for name, f := range fl {
				if want := envName(name); f.env != want {
					t.Errorf("--%s reads %s, want %s", name, f.env, want)
				}
			}
		})
	}

	t.Run("services", func(t *testing.T) {
		run := map[string]bool{}
		for _, s := range ours {
			run[s.bin.name] = true
		}
		for _, name := range services {
			if !run[name] {
				t.Errorf("no compose service runs %s", name)
			}
		}
	})

	for _, s := range ours {
		t.Run("flags/"+s.name, func(t *testing.T) {
			fl := flags[s.bin.name]
			given := s.settings(t)
			if len(given) == 0 {
				t.Fatalf("service %s sets no flag and no PRESENCE_* variable", s.name)
			}
			for name, v := range given {
				if _, ok := fl[name]; !ok {
					t.Errorf("service %s sets %s, which %s does not take", s.name, v.from, s.bin.name)
				}
			}
			for _, host := range dependencyHosts(t, given) {
				if _, ok := compose.Services[host]; !ok {
					t.Errorf("service %s points at %q, which is no compose service", s.name, host)
				}
			}
		})
	}

	for _, s := range ours {
		t.Run("dockerfile/"+s.name, func(t *testing.T) {
			df := s.svc.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			img := readDockerfile(t, filepath.Join(root, s.svc.Build.Context, df))
			if !img.static {
				t.Errorf("%s builds without CGO_ENABLED=0; the distroless static image needs static binaries", df)
			}
			pkg, ok := img.binaries[s.argv[0]]
			if !ok {
				t.Fatalf("service %s runs %s, which %s does not put in its image (it has %v)", s.name, s.argv[0], df, img.binaries)
			}
			if pkg != s.bin.pkg {
				t.Errorf("%s builds %s from %s, want %s", df, s.argv[0], pkg, s.bin.pkg)
			}
		})
	}

	targets := readScrapeTargets(t, filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	t.Run("prometheus/all-scraped", func(t *testing.T) {
		scraped := map[string]bool{}
		for _, tg := range targets {
			host, _, _ := net.SplitHostPort(tg.addr)
			scraped[host] = true
		}
		for _, s := range ours {
			if !scraped[s.name] {
				t.Errorf("prometheus does not scrape service %s", s.name)
			}
		}
	})
	for _, tg := range targets {
		t.Run("prometheus/"+tg.job+"/"+tg.addr, func(t *testing.T) {
			if tg.path != "" && tg.path != "/metrics" {
				t.Errorf("job %s scrapes %s, the services serve /metrics", tg.job, tg.path)
			}
			host, port, err := net.SplitHostPort(tg.addr)
			if err != nil {
				t.Fatalf("target %q: %v", tg.addr, err)
			}
			i := slices.IndexFunc(ours, func(s service) bool { return s.name == host })
			if i < 0 {
				t.Fatalf("target %s names no compose service running a Presence binary", tg.addr)
			}
			if want := ours[i].listenPort(t, flags[ours[i].bin.name]); port != want {
				t.Errorf("target %s: service %s listens on port %s", tg.addr, host, want)
			}
		})
	}

	for _, name := range slices.Sorted(maps.Keys(compose.Services)) {
		svc := compose.Services[name]
		t.Run("depends_on/"+name, func(t *testing.T) {
			for _, dep := range slices.Sorted(maps.Keys(svc.DependsOn)) {
				cond := svc.DependsOn[dep]
				other, ok := compose.Services[dep]
				switch {
				case !ok:
					t.Errorf("%s depends on %s, which is no compose service", name, dep)
				case cond == "service_healthy" && len(other.Healthcheck.Test) == 0:
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				case cond != "service_started" && cond != "service_healthy" && cond != "service_completed_successfully":
					t.Errorf("%s depends on %s with unknown condition %q", name, dep, cond)
				}
			}
		})
	}
}

// envName is the environment variable behind a flag, as the binaries
// document it.
func envName(flag string) string {
	return "PRESENCE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

var (
	flagLine    = regexp.MustCompile(`^  --([a-z0-9][a-z0-9-]*) \(([A-Z0-9_]+)\)$`)
	defaultText = regexp.MustCompile(`\(default "(.*)"\)$`)
)

// helpFlags builds every binary from the repository root and returns, by
// binary name, the flags its --help lists.
func helpFlags(t *testing.T, root string) map[string]map[string]flagInfo {
	t.Helper()
	dir := t.TempDir()
	out := map[string]map[string]flagInfo{}
	for _, b := range binaries {
		exe := filepath.Join(dir, b.name)
		build := exec.Command("go", "build", "-o", exe, b.pkg)
		build.Dir = root
		if msg, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, msg)
		}
		help, err := exec.Command(exe, append(slices.Clone(b.sub), "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", b.name, err, help)
		}
		fl := map[string]flagInfo{}
		lines := strings.Split(string(help), "\n")
		for i, line := range lines {
			m := flagLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			f := flagInfo{env: m[2]}
			if i+1 < len(lines) {
				if d := defaultText.FindStringSubmatch(lines[i+1]); d != nil {
					f.def = d[1]
				}
			}
			fl[m[1]] = f
		}
		out[b.name] = fl
	}
	return out
}

// service is a compose service that runs one of the binaries.
type service struct {
	name string
	svc  composeService
	bin  binary
	argv []string
}

// ourServices returns the compose services that run a Presence binary. A
// service built from a Dockerfile must run one.
func ourServices(t *testing.T, c composeFile) []service {
	t.Helper()
	var out []service
	for name, svc := range c.Services {
		argv := svc.Command
		if len(svc.Entrypoint) > 0 {
			argv = append(slices.Clone(svc.Entrypoint), svc.Command...)
		}
		i := -1
		if len(argv) > 0 {
			i = slices.IndexFunc(binaries, func(b binary) bool { return b.name == filepath.Base(argv[0]) })
		}
		if i < 0 {
			if svc.Build != nil {
				t.Errorf("service %s is built from the repository but runs %q, no Presence binary", name, argv)
			}
			continue
		}
		b := binaries[i]
		if svc.Build == nil {
			t.Errorf("service %s runs %s but has no build section", name, b.name)
			continue
		}
		if len(argv) < 1+len(b.sub) || !slices.Equal(argv[1:1+len(b.sub)], b.sub) {
			t.Errorf("service %s runs %s without its subcommand %q", name, b.name, b.sub)
			continue
		}
		out = append(out, service{name: name, svc: svc, bin: b, argv: argv})
	}
	slices.SortFunc(out, func(a, b service) int { return strings.Compare(a.name, b.name) })
	return out
}

// setting is one flag value a service is given, and where.
type setting struct {
	value string
	from  string
}

// settings returns the flags the service sets, by flag name: those of its
// command line, and those of its PRESENCE_* variables that the command line
// does not set (the command line wins, as in the binaries).
func (s service) settings(t *testing.T) map[string]setting {
	t.Helper()
	out := map[string]setting{}
	for k, v := range s.svc.Environment {
		name, ok := strings.CutPrefix(k, "PRESENCE_")
		if !ok {
			continue
		}
		out[strings.ToLower(strings.ReplaceAll(name, "_", "-"))] = setting{value: v, from: k}
	}
	args := s.argv[1+len(s.bin.sub):]
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") {
			t.Errorf("service %s passes %q, which is no flag; the binaries take no arguments", s.name, arg)
			continue
		}
		name, value, ok := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			value = args[i]
		}
		out[name] = setting{value: value, from: "--" + name}
	}
	return out
}

// listenPort is the port the service's --addr (or its default) opens.
func (s service) listenPort(t *testing.T, fl map[string]flagInfo) string {
	t.Helper()
	addr, ok := s.settings(t)["addr"]
	if !ok {
		f, known := fl["addr"]
		if !known {
			t.Fatalf("%s has no --addr flag", s.bin.name)
		}
		addr = setting{value: f.def, from: "default"}
	}
	_, port, err := net.SplitHostPort(addr.value)
	if err != nil {
		t.Fatalf("service %s: %s %q: %v", s.name, addr.from, addr.value, err)
	}
	return port
}

// dependencyHosts returns the hosts of the Kafka brokers and the Redis URL
// a service is given.
func dependencyHosts(t *testing.T, given map[string]setting) []string {
	t.Helper()
	var hosts []string
	if b, ok := given["brokers"]; ok {
		for _, addr := range strings.Split(b.value, ",") {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				t.Errorf("%s %q: %v", b.from, b.value, err)
				continue
			}
			hosts = append(hosts, host)
		}
	}
	if r, ok := given["redis-url"]; ok {
		u, err := url.Parse(interpolate(r.value))
		if err != nil {
			t.Errorf("%s %q: %v", r.from, r.value, err)
		} else {
			hosts = append(hosts, u.Hostname())
		}
	}
	return hosts
}

// image is what a Dockerfile's final stage holds: the path of each binary
// built with go build, and the package it was built from.
type image struct {
	binaries map[string]string
	static   bool
}

package deploy

import (
	"bufio"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// variable is a ${NAME}, ${NAME:-default} or ${NAME:?error} of compose
// interpolation ("$$" is a literal '$', never a variable).
var variable = regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\})`)

// interpolate replaces each variable of s by a value of its own, as compose
// would with every variable set, and "$$" by "$".
func interpolate(s string) string {
	return variable.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return "value-of-" + variable.FindStringSubmatch(m)[2]
	})
}

// secretName says whether a variable holds a secret.
var secretName = regexp.MustCompile(`PASSWORD|SECRET|TOKEN|_KEY$`)

// TestComposeSecurity keeps docker-compose.yml secure by default: compose
// refuses to start without each secret and has no default for any,
// .env.example lists them empty, no port without authentication is
// published beyond the host, Redis requires a password, Kafka SASL on
// every client listener, and Grafana an admin password of the user's.
func TestComposeSecurity(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	compose := readCompose(t, filepath.Join(root, "docker-compose.yml"))

	secrets := map[string]bool{}
	t.Run("secrets-required", func(t *testing.T) {
		for _, m := range variable.FindAllStringSubmatch(string(raw), -1) {
			name, op := m[2], m[3]
			if name == "" || !secretName.MatchString(name) {
				continue
			}
			secrets[name] = true
			if op != ":?" {
				t.Errorf("%s: a secret must be ${%s:?...}, so that compose refuses to start without it, with no default", m[0], name)
			}
		}
		if len(secrets) == 0 {
			t.Fatal("docker-compose.yml takes no secret from the environment")
		}
	})
	t.Run("env-example", func(t *testing.T) {
		listed := readEnvExample(t, filepath.Join(root, ".env.example"))
		for _, name := range slices.Sorted(maps.Keys(secrets)) {
			v, ok := listed[name]
			switch {
			case !ok:
				t.Errorf(".env.example does not list %s", name)
			case v != "":
				t.Errorf(".env.example sets %s=%q: secrets stay empty there, for the user to choose", name, v)
			}
		}
		ignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
		if err != nil || !regexp.MustCompile(`(?m)^/?\.env$`).Match(ignore) {
			t.Errorf(".gitignore does not ignore .env, which holds the secrets (%v)", err)
		}
	})

	for _, name := range slices.Sorted(maps.Keys(compose.Services)) {
		svc := compose.Services[name]
		for _, p := range svc.Ports {
			t.Run("ports/"+name+"/"+p.Target, func(t *testing.T) {
				if p.Published == "" && p.HostIP == "" {
					t.Errorf("port %s is published on a random port of every interface", p.Target)
					return
				}
				if p.HostIP == "127.0.0.1" || p.HostIP == "::1" {
					return
				}
				if why := withoutAuth(t, name, svc); why != "" {
					t.Errorf("port %s is published on every interface, but %s: bind it to 127.0.0.1", p.Target, why)
				}
			})
		}
	}

	redis, ok := compose.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	t.Run("redis-password", func(t *testing.T) {
		cmd := strings.Join(redis.Command, " ")
		m := regexp.MustCompile(`--requirepass\s+"?\$\$([A-Z_]+)`).FindStringSubmatch(cmd)
		if m == nil {
			t.Fatalf("redis runs %q, without --requirepass from its environment", cmd)
		}
		if v := redis.Environment[m[1]]; !variable.MatchString(v) || !secrets[variable.FindStringSubmatch(v)[2]] {
			t.Errorf("redis's %s is %q, not a secret of the environment", m[1], v)
		}
		if !strings.Contains(strings.Join(redis.Healthcheck.Test, " "), "REDISCLI_AUTH") {
			t.Errorf("redis's healthcheck %q does not authenticate", redis.Healthcheck.Test)
		}
	})

	kafka, ok := compose.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	users := kafkaUsers(t, kafka)
	ours := ourServices(t, compose)
	for _, s := range ours {
		given := s.settings(t)
		t.Run("credentials/"+s.name, func(t *testing.T) {
			if r, ok := given["redis-url"]; ok {
				u, err := url.Parse(interpolate(r.value))
				if err != nil {
					t.Fatalf("%s: %v", r.from, err)
				}
				if _, set := u.User.Password(); !set {
					t.Errorf("%s %q has no password", r.from, r.value)
				}
			}
			if _, ok := given["brokers"]; !ok {
				return
			}
			mech, user, pass := given["kafka-sasl-mechanism"], given["kafka-username"], given["kafka-password"]
			switch {
			case mech.value == "" || user.value == "" || pass.value == "":
				t.Errorf("service %s reaches kafka without a SASL mechanism, user and password", s.name)
			case !slices.Contains(users[mech.value], user.value):
				t.Errorf("service %s authenticates as %s with %s, which kafka does not know (it has %v)", s.name, user.value, mech.value, users)
			case pass.from == "--kafka-password":
				t.Errorf("service %s gives the kafka password on its command line: use PRESENCE_KAFKA_PASSWORD", s.name)
			}
		})
	}

	t.Run("grafana", func(t *testing.T) {
		g, ok := compose.Services["grafana"]
		if !ok {
			t.Fatal("no grafana service")
		}
		if why := withoutAuth(t, "grafana", g); why != "" {
			t.Error(why)
		}
	})
}

// withoutAuth says why a service answers callers without authentication,
// or "" when it does not.
func withoutAuth(t *testing.T, name string, svc composeService) string {
	t.Helper()
	if strings.HasPrefix(svc.Image, "grafana/") {
		pw := svc.Environment["GF_SECURITY_ADMIN_PASSWORD"]
		switch {
		case !variable.MatchString(pw):
			return "grafana's admin password is not a secret of the environment"
		case strings.EqualFold(svc.Environment["GF_AUTH_ANONYMOUS_ENABLED"], "true"):
			return "grafana lets anonymous users in"
		}
		return ""
	}
	for _, s := range ourServices(t, composeFile{Services: map[string]composeService{name: svc}}) {
		if a, ok := s.settings(t)["auth"]; ok && a.value != "" {
			return ""
		}
		return s.bin.name + " is given no --auth"
	}
	return name + " has no authentication this test knows of"
}

// kafkaUsers returns the SASL users of every client listener of the kafka
// service, by mechanism, after checking that each listener but the
// controller's requires SASL and that the controller's listens on the
// loopback only.
func kafkaUsers(t *testing.T, kafka composeService) map[string][]string {
	t.Helper()
	env := kafka.Environment
	controllers := strings.Split(env["KAFKA_CONTROLLER_LISTENER_NAMES"], ",")
	mechs := strings.Split(env["KAFKA_SASL_ENABLED_MECHANISMS"], ",")
	users := map[string][]string{}
	userRE := regexp.MustCompile(`user_([A-Za-z0-9_-]+)=`)
	for _, l := range strings.Split(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		name, proto, _ := strings.Cut(l, ":")
		if slices.Contains(controllers, name) {
			continue
		}
		if proto != "SASL_PLAINTEXT" && proto != "SASL_SSL" {
			t.Errorf("kafka listener %s is %s: every client listener must require SASL", name, proto)
			continue
		}
		for _, mech := range mechs {
			jaas := env["KAFKA_LISTENER_NAME_"+name+"_"+strings.ReplaceAll(mech, "-", "_")+"_SASL_JAAS_CONFIG"]
			for _, m := range userRE.FindAllStringSubmatch(jaas, -1) {
				if !slices.Contains(users[mech], m[1]) {
					users[mech] = append(users[mech], m[1])
				}
			}
		}
	}
	for _, l := range strings.Split(env["KAFKA_LISTENERS"], ",") {
		name, addr, _ := strings.Cut(l, "://")
		if slices.Contains(controllers, name) && !strings.HasPrefix(addr, "localhost:") && !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("kafka's controller listener %s, without authentication, listens on %q, beyond the container's loopback", name, addr)
		}
	}
	if len(users) == 0 {
		t.Error("kafka declares no SASL user")
	}
	return users
}

// readEnvExample reads the NAME=value lines of a .env file.
func readEnvExample(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}

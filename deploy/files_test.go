package deploy

// Readers of the files the compose check compares: the compose file, the
// Dockerfile and the Prometheus config.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// readDockerfile finds the go build commands of a Dockerfile and follows
// their outputs through COPY --from into the final stage.
func readDockerfile(t *testing.T, path string) image {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the Dockerfile: %v", err)
	}
	type built struct{ stage, pkg string }
	outputs := map[string]built{}
	var stage string
	var final map[string]string
	static := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(string(data), "\\\n", " ")))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stage = fields[len(fields)-1]
			final = map[string]string{}
		case "ENV":
			if slices.Contains(fields, "CGO_ENABLED=0") {
				static[stage] = true
			}
		case "RUN":
			for _, cmd := range regexp.MustCompile(`&&|;`).Split(strings.Join(fields[1:], " "), -1) {
				out, pkg := goBuild(strings.Fields(cmd))
				if out != "" {
					outputs[out] = built{stage: stage, pkg: pkg}
					if strings.Contains(cmd, "CGO_ENABLED=0") {
						static[stage] = true
					}
				}
			}
		case "COPY":
			from, rest := "", fields[1:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
				if v, ok := strings.CutPrefix(rest[0], "--from="); ok {
					from = v
				}
				rest = rest[1:]
			}
			if from == "" || len(rest) < 2 {
				continue
			}
			dst := rest[len(rest)-1]
			for _, src := range rest[:len(rest)-1] {
				for out, b := range outputs {
					if b.stage != from {
						continue
					}
					switch {
					case out == src && strings.HasSuffix(dst, "/"):
						final[dst+filepath.Base(out)] = b.pkg
					case out == src:
						final[dst] = b.pkg
					case strings.TrimSuffix(src, "/") == filepath.Dir(out):
						final[filepath.Join(dst, filepath.Base(out))] = b.pkg
					}
				}
			}
		}
	}
	img := image{binaries: final, static: len(outputs) > 0}
	for _, b := range outputs {
		img.static = img.static && static[b.stage]
	}
	return img
}

// goBuild returns the output and package of a go build command line, or
// empty strings when the line is something else.
func goBuild(args []string) (out, pkg string) {
	i := slices.Index(args, "go")
	if i < 0 || i+1 >= len(args) || args[i+1] != "build" {
		return "", ""
	}
	args = args[i+2:]
	for j, a := range args {
		if a == "-o" && j+1 < len(args) {
			out = args[j+1]
		} else if v, ok := strings.CutPrefix(a, "-o="); ok {
			out = v
		} else if strings.HasPrefix(a, "./") {
			pkg = a
		}
	}
	return out, pkg
}

// scrapeTarget is one static target of a Prometheus scrape job.
type scrapeTarget struct {
	job, path, addr string
}

func readScrapeTargets(t *testing.T, path string) []scrapeTarget {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the Prometheus config: %v", err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	var out []scrapeTarget
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, addr := range st.Targets {
				out = append(out, scrapeTarget{job: sc.JobName, path: sc.MetricsPath, addr: addr})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no static scrape targets", path)
	}
	return out
}

// composeFile is the part of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string        `yaml:"image"`
	Build       *composeBuild `yaml:"build"`
	Entrypoint  stringList    `yaml:"entrypoint"`
	Command     stringList    `yaml:"command"`
	Environment envMap        `yaml:"environment"`
	Healthcheck struct {
		Test stringList `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn dependsOn     `yaml:"depends_on"`
	Ports     []composePort `yaml:"ports"`
}

func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the compose file: %v", err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s defines no services", path)
	}
	for name, svc := range c.Services {
		if len(svc.Healthcheck.Test) > 0 && svc.Healthcheck.Test[0] == "NONE" {
			svc.Healthcheck.Test = nil
			c.Services[name] = svc
		}
	}
	return c
}

// composeBuild is a build section, short (the context) or long.
type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// stringList is a command line, given as a list or as one string.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(l))
}

// envMap is an environment section, given as a map (whose "<<" merges
// another) or as KEY=VALUE lines.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	*e = envMap{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value != "<<" {
				(*e)[k.Value] = v.Value
				continue
			}
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			var merged envMap
			if err := merged.UnmarshalYAML(v); err != nil {
				return err
			}
			for mk, mv := range merged {
				if _, set := (*e)[mk]; !set {
					(*e)[mk] = mv
				}
			}
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			k, v, _ := strings.Cut(item.Value, "=")
			(*e)[k] = v
		}
	default:
		return n.Decode((*map[string]string)(e))
	}
	return nil
}

// dependsOn maps each dependency to its condition, from the list form
// (service_started) or the long form.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*d)[name] = "service_started"
		}
		return nil
	}
	var long map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	for name, dep := range long {
		if dep.Condition == "" {
			dep.Condition = "service_started"
		}
		(*d)[name] = dep.Condition
	}
	return nil
}

// composePort is one published port, from the short form
// ("[host_ip:][published:]target[/protocol]") or the long one.
type composePort struct {
	HostIP    string `yaml:"host_ip"`
	Published string `yaml:"published"`
	Target    string `yaml:"target"`
}

func (p *composePort) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain composePort
		return n.Decode((*plain)(p))
	}
	spec, _, _ := strings.Cut(n.Value, "/")
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 1:
		p.Target = parts[0]
	case 2:
		p.Published, p.Target = parts[0], parts[1]
	case 3:
		p.HostIP, p.Published, p.Target = parts[0], parts[1], parts[2]
	default:
		return fmt.Errorf("port %q: want [host_ip:][published:]target", n.Value)
	}
	return nil
}

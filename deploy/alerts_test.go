package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// alertFile is what alerts.yml holds.
type alertFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertTestFile is what alerts_test.yml holds, as far as this test reads.
type alertTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// The alert rules pass `promtool check rules` and their unit tests
// (`promtool test rules`, installed by `make promtool`); every rule has a
// for:, a severity and a summary and description for whoever is paged, and
// a unit test in which it fires; Prometheus loads the file in compose.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed to check the alert rules (Debian package prometheus; `make promtool` installs it): %v", err)
	}
	dir := "prometheus"
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var rules alertFile
	readYAML(t, filepath.Join(dir, "alerts.yml"), &rules)
	var tests alertTestFile
	readYAML(t, filepath.Join(dir, "alerts_test.yml"), &tests)
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			names = append(names, r.Alert)
			if r.For == "" {
				t.Errorf("%s has no for: one bad scrape pages someone", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 100 {
				t.Errorf("%s: a summary and a description saying what to do are needed", r.Alert)
			}
			if !fired[r.Alert] {
				t.Errorf("%s fires in no test of alerts_test.yml", r.Alert)
			}
		}
	}
	for _, want := range []string{"PresenceConsumerLagGrowing", "PresenceRebuildingTooLong", "PresenceDeadLetters",
		"PresenceGatewaysLostInBulk", "PresenceRedisUnavailable", "PresencePartitionsStalled", "PresenceTargetDown",
		"PresenceWebhookDeliveriesFailing"} {
		if !slices.Contains(names, want) {
			t.Errorf("alerts.yml has no rule %s", want)
		}
	}
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("alerts_test.yml tests %v, want alerts.yml", tests.RuleFiles)
	}

	var config struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, filepath.Join(dir, "prometheus.yml"), &config)
	if !slices.Contains(config.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml loads rule files %v, not alerts.yml", config.RuleFiles)
	}
	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	readYAML(t, filepath.Join("..", "docker-compose.yml"), &compose)
	mount := "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"
	if !slices.Contains(compose.Services["prometheus"].Volumes, mount) {
		t.Errorf("docker-compose.yml does not mount %s in prometheus, next to prometheus.yml", mount)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

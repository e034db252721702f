package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// dashboard is what this test reads of a Grafana dashboard.
type dashboard struct {
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The dashboard reads: panels sit in rows, on the provisioned Prometheus
// data source, without overlapping, each with queries; and every query is
// valid PromQL (promtool checks them as recording rules, with Grafana's
// $__rate_interval as 5m). (presence/dev's TestMetricsDocumented checks
// that they name metrics the servers register, and a panel shows each.)
func TestDashboard(t *testing.T) {
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join("grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("provisioned data sources %+v, want one prometheus", ds.Datasources)
	}
	uid := ds.Datasources[0].UID

	data, err := os.ReadFile(filepath.Join("grafana", "dashboards", "presence.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("presence.json: %v", err)
	}
	if len(d.Panels) == 0 || d.Panels[0].Type != "row" {
		t.Fatal("presence.json does not start with a row")
	}
	ids := map[int]bool{}
	taken := map[[2]int]string{} // grid cells (x, y) to the panel there
	var rules []map[string]string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X < 0 || p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("panel %q: gridPos %+v is outside the 24 columns", p.Title, p.GridPos)
		}
	cells:
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[[2]int{x, y}]; ok {
					t.Errorf("panel %q overlaps %q", p.Title, other)
					break cells
				}
				taken[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != uid {
			t.Errorf("panel %q reads data source %q, not the provisioned %q", p.Title, p.Datasource.UID, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q: a query without expr or refId", p.Title)
				continue
			}
			rules = append(rules, map[string]string{
				"record": fmt.Sprintf("panel_%d_%s", p.ID, tg.RefID),
				"expr":   strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m"),
			})
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed to check the panels' queries (Debian package prometheus; `make promtool` installs it): %v", err)
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "panels", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "panels.yml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("the panels' queries are not valid PromQL: %v\n%s", err, msg)
	}
}

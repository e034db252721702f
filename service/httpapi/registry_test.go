package httpapi

import (
	"runtime"
	"testing"

	"github.com/presence-im/presence/service/cli"
)

// TestBuildInfo: every server's registry says which version it runs.
func TestBuildInfo(t *testing.T) {
	families, err := NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "presence_build_info" {
			continue
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("presence_build_info has %d series, want 1", len(f.GetMetric()))
		}
		m := f.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["version"] != cli.Version() || labels["goversion"] != runtime.Version() || len(labels) != 2 {
			t.Fatalf("presence_build_info%v = %v, want {version=%q, goversion=%q} = 1", labels, m.GetGauge().GetValue(), cli.Version(), runtime.Version())
		}
		return
	}
	t.Fatal("the registry has no presence_build_info")
}

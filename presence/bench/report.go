package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable writes rep as a table for people: one line per metric with
// both sides, their ratio, the target and whether it was met; the latency
// percentiles; then what each scenario checked.
func WriteTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tproject\traw\tratio\ttarget\tmet")
	for _, res := range rep.Results {
		for i, m := range res.Metrics {
			target, met := "", ""
			if i == 0 {
				target, met = res.Target, "-"
				if res.Met != nil {
					met = map[bool]string{true: "yes", false: "NO"}[*res.Met]
				}
				if target == "" {
					target = "(none)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f×\t%s\t%s\n", res.Scenario, m.Name, number(m.Project), number(m.Raw), m.Ratio, target, met)
		}
		if res.ProjectLatency != nil && res.RawLatency != nil {
			p, r := res.ProjectLatency, res.RawLatency
			fmt.Fprintf(tw, "%s\tlatency p50 (ms)\t%s\t%s\t%.2f×\t\t\n", res.Scenario, millis(p.P50), millis(r.P50), ratio(p.P50, r.P50))
			fmt.Fprintf(tw, "%s\tlatency p99 (ms)\t%s\t%s\t%.2f×\t\t\n", res.Scenario, millis(p.P99), millis(r.P99), ratio(p.P99, r.P99))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, res := range rep.Results {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(res.Checks)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, res.Checks[k]))
		}
		fmt.Fprintf(w, "checked %s (%.1fs): %s\n", res.Scenario, res.Seconds, strings.Join(parts, ", "))
	}
	redis := "redis CPU and memory are redis-server's"
	if m := rep.Machine.RedisMasters; m > 0 {
		redis = fmt.Sprintf("redis CPU and memory are the total of the cluster's %d masters", m)
	}
	_, err := fmt.Fprintf(w, "\nratio = project / raw: for throughput higher is better, for CPU, latency and memory lower is better.\n"+
		"%s; process CPU is this process's: the in-process Kafka, the project's components, the clients.\n"+
		"%d CPUs, %s, redis %s, kafka %s; wall time %.1fs\n",
		redis, rep.Machine.CPUs, rep.Machine.Go, rep.Machine.Redis, rep.Machine.Kafka, rep.Seconds)
	return err
}

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// number formats v with thousands separators, and a decimal below 100.
func number(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func millis(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

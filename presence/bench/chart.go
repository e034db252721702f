package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"time"
)

// Dimensions of one panel of the chart, in SVG units.
const (
	panelWidth, panelHeight         = 520, 360
	marginLeft, marginRight         = 60, 20
	marginTop, marginBottom         = 70, 50
	plotWidth                       = panelWidth - marginLeft - marginRight
	plotHeight                      = panelHeight - marginTop - marginBottom
	projectColor, rawColor, inkGray = "#1f77b4", "#ff7f0e", "#888"
	cdfPoints                       = 400
)

// WriteChart writes an SVG of the latency distributions of rep: a panel
// per scenario that measured latencies (query and fanout), each with the
// share of operations (y) done within a latency (x, log scale), for the
// project and for the raw baseline.
func WriteChart(w io.Writer, rep *Report) error {
	var panels []Result
	for _, res := range rep.Results {
		if len(res.projectSamples) > 0 && len(res.rawSamples) > 0 {
			panels = append(panels, res)
		}
	}
	bw := bufio.NewWriter(w)
	width := max(len(panels), 1) * panelWidth
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, panelHeight, width, panelHeight)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, panelHeight)
	if len(panels) == 0 {
		fmt.Fprintf(bw, `<text x="20" y="40">no latency measured in this run (the query and fanout scenarios measure it)</text>`+"\n")
	}
	for i, res := range panels {
		writePanel(bw, float64(i*panelWidth), res)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// writePanel draws the distributions of one result at x offset.
func writePanel(w io.Writer, offset float64, res Result) {
	lo, hi := decades(res.projectSamples, res.rawSamples)
	x := func(d time.Duration) float64 {
		v := math.Log10(math.Max(ms(d), math.Pow10(lo)))
		return offset + marginLeft + (v-float64(lo))/float64(hi-lo)*plotWidth
	}
	y := func(share float64) float64 { return marginTop + (1-share)*plotHeight }

	title := map[string]string{
		"query":  "query: latency of a 500-id lookup",
		"fanout": "fanout: latency from connect to a friend's gateway",
	}[res.Scenario]
	if title == "" {
		title = res.Scenario + ": latency"
	}
	fmt.Fprintf(w, `<text x="%.1f" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", offset+marginLeft, html.EscapeString(title))
	for i, side := range []struct {
		name    string
		color   string
		lat     *Latency
		samples []time.Duration
	}{{"project", projectColor, res.ProjectLatency, res.projectSamples}, {"raw", rawColor, res.RawLatency, res.rawSamples}} {
		ly := 38.0 + 16*float64(i)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n",
			offset+marginLeft, ly-4, offset+marginLeft+20, ly-4, side.color)
		label := side.name
		if side.lat != nil {
			label = fmt.Sprintf("%s: p50 %s ms, p99 %s ms, %d samples", side.name, millis(side.lat.P50), millis(side.lat.P99), side.lat.Count)
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f">%s</text>`+"\n", offset+marginLeft+26, ly, html.EscapeString(label))
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, side.color)
		n := len(side.samples)
		for p := 0; p <= cdfPoints; p++ {
			share := float64(p) / cdfPoints
			i := min(int(share*float64(n)), n-1)
			fmt.Fprintf(w, "%.1f,%.1f ", x(side.samples[i]), y(share))
		}
		fmt.Fprintln(w, `"/>`)
	}
	// axes, grid and labels
	fmt.Fprintf(w, `<rect x="%.1f" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", offset+marginLeft, marginTop, plotWidth, plotHeight, inkGray)
	for d := lo; d <= hi; d++ {
		gx := offset + marginLeft + float64(d-lo)/float64(hi-lo)*plotWidth
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", gx, marginTop, gx, marginTop+plotHeight)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx, marginTop+plotHeight+16, decadeLabel(d))
	}
	for _, share := range []float64{0, 0.25, 0.5, 0.75, 0.9, 0.99} {
		dash := ""
		if share == 0.5 || share == 0.99 {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"%s/>`+"\n", offset+marginLeft, y(share), offset+marginLeft+plotWidth, y(share), dash)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%g%%</text>`+"\n", offset+marginLeft-6, y(share)+4, share*100)
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">latency (log scale)</text>`+"\n", offset+marginLeft+plotWidth/2, panelHeight-8)
	fmt.Fprintf(w, `<text transform="translate(%.1f %d) rotate(-90)" text-anchor="middle">done within</text>`+"\n", offset+14, marginTop+plotHeight/2)
}

// decades returns the powers of ten of milliseconds that bracket every
// sample of both sides (sorted), at least one decade apart.
func decades(a, b []time.Duration) (lo, hi int) {
	least := math.Min(ms(a[0]), ms(b[0]))
	most := math.Max(ms(a[len(a)-1]), ms(b[len(b)-1]))
	lo = int(math.Floor(math.Log10(math.Max(least, 1e-3))))
	hi = int(math.Ceil(math.Log10(math.Max(most, 1e-3))))
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

// decadeLabel names 10^d milliseconds.
func decadeLabel(d int) string {
	v := math.Pow10(d)
	switch {
	case v >= 1000:
		return fmt.Sprintf("%g s", v/1000)
	case v < 1:
		return fmt.Sprintf("%g µs", v*1000)
	}
	return fmt.Sprintf("%g ms", v)
}

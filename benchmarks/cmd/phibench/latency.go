package main

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// latencyPercentiles are the percentiles the latency table and plot show.
var latencyPercentiles = []float64{50, 90, 99, 99.9, 99.99, 99.999, 100}

// latencyRun is one EncryptLatencies run's summary.
type latencyRun struct {
	label    string
	n        int
	kmsCalls uint64
	at       []time.Duration // at latencyPercentiles
}

// latencyConfig is the experiment: kmsmock 20 ms away, entries living
// 250 ms, refreshed 100 ms before expiry when refresh-ahead is on.
func latencyConfig(quick bool, refreshAhead bool) suite.LatencyConfig {
	cfg := suite.LatencyConfig{KMSLatency: 20 * time.Millisecond, MaxAge: 250 * time.Millisecond, Duration: 5 * time.Second}
	if quick {
		cfg.Duration = 2 * time.Second
	}
	if refreshAhead {
		cfg.RefreshAhead = 100 * time.Millisecond
	}
	return cfg
}

// measureLatency runs the experiment with refresh-ahead off and on.
func measureLatency(env *suite.Env, quick bool, stderr io.Writer) ([]latencyRun, error) {
	var runs []latencyRun
	for _, on := range []bool{false, true} {
		label := "refresh-ahead off"
		if on {
			label = "refresh-ahead on"
		}
		fmt.Fprintf(stderr, "latency: cached-encrypt 1KiB, %s ... ", label)
		lat, calls, err := suite.EncryptLatencies(env, latencyConfig(quick, on))
		if err != nil {
			fmt.Fprintln(stderr, "FAILED")
			return nil, err
		}
		slices.Sort(lat)
		r := latencyRun{label: label, n: len(lat), kmsCalls: calls}
		for _, p := range latencyPercentiles {
			r.at = append(r.at, lat[min(len(lat)-1, int(p/100*float64(len(lat))))])
		}
		fmt.Fprintf(stderr, "%d messages\n", r.n)
		runs = append(runs, r)
	}
	return runs, nil
}

func percentileName(p float64) string {
	if p == 100 {
		return "max"
	}
	return "p" + strings.TrimSuffix(fmt.Sprintf("%g", p), ".0")
}

func printLatency(w io.Writer, quick bool, runs []latencyRun) {
	cfg := latencyConfig(quick, true)
	fmt.Fprintf(w, "\ncached-encrypt 1KiB latency: kmsmock adds %v per call, MaxAge %v, refresh-ahead %v before expiry when on\n",
		cfg.KMSLatency, cfg.MaxAge, cfg.RefreshAhead)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\tmessages\tKMS calls\t")
	for _, p := range latencyPercentiles {
		fmt.Fprintf(tw, "%s\t", percentileName(p))
	}
	fmt.Fprintln(tw)
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t", r.label, r.n, r.kmsCalls)
		for _, d := range r.at {
			fmt.Fprintf(tw, "%v\t", d.Round(100*time.Nanosecond))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// latencyPlotPath is where -plot's latency chart goes: beside the
// throughput chart, with -latency before the extension.
func latencyPlotPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-latency" + ext
}

// drawLatency draws the percentiles of both runs, log latency.
func drawLatency(path string, runs []latencyRun) error {
	p := plot.New()
	p.Title.Text = "1 KiB Encrypt latency through a Cache, KMS 20 ms away"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var ticks []plot.Tick
	for i, pc := range latencyPercentiles {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: percentileName(pc)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	colors := []color.Color{color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}
	for i, r := range runs {
		var pts plotter.XYs
		for j, d := range r.at {
			pts = append(pts, plotter.XY{X: float64(j), Y: max(float64(d)/1e3, 0.1)})
		}
		line, scatter, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, scatter.Color = colors[i%len(colors)], colors[i%len(colors)]
		scatter.Shape = draw.CircleGlyph{}
		p.Add(line, scatter)
		p.Legend.Add(r.label, line, scatter)
	}
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}

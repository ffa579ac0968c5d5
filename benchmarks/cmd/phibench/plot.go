package main

import (
	"errors"
	"image/color"
	"sort"

	"github.com/phicrypt/phicrypt/benchmarks/suite"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is one line of the plot: an implementation's op at every size.
type series struct {
	label  string
	impl   string
	op     string
	color  color.Color
	dashed bool
}

var plotSeries = []series{
	{"phicrypt encrypt", suite.ImplPhicrypt, "message-encrypt", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, false},
	{"phicrypt decrypt", suite.ImplPhicrypt, "message-decrypt", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, true},
	{"raw AES-256-GCM seal", suite.ImplRawGCM, "seal", color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}, false},
	{"raw AES-256-GCM open", suite.ImplRawGCM, "open", color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}, true},
	{"Tink AEAD encrypt", suite.ImplTink, "aead-encrypt", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, false},
	{"Tink AEAD decrypt", suite.ImplTink, "aead-decrypt", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, true},
	{"AWS Go ESDK encrypt", suite.ImplAWS, "message-encrypt", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, false},
	{"AWS Go ESDK decrypt", suite.ImplAWS, "message-decrypt", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, true},
}

// points are s's (size, MB/s) in rows: the default suite, one raw seal
// per message, the raw AES keyring (no KMS calls), the default frame and
// one worker.
func (s series) points(rows []row) plotter.XYs {
	var pts plotter.XYs
	for _, r := range rows {
		if r.Impl != s.impl || r.Op != s.op || r.noJSON || r.KMSCallsPerOp > 0 || r.Workers > 1 || isTen(r) || r.MBPerS <= 0 {
			continue
		}
		if r.Suite != "" && r.Suite != suite.Suite0478 {
			continue
		}
		if r.name != "" && len(r.name) > 5 && containsFrame(r.name) {
			continue
		}
		pts = append(pts, plotter.XY{X: float64(r.SizeBytes), Y: r.MBPerS})
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
	return pts
}

func containsFrame(name string) bool {
	for i := 0; i+6 <= len(name); i++ {
		if name[i:i+6] == "/frame" {
			return true
		}
	}
	return false
}

// drawPlot draws message throughput against size, log-log, to path (.svg
// or .png, by its extension).
func drawPlot(path string, rows []row) error {
	p := plot.New()
	p.Title.Text = "Message throughput by size (same run)"
	p.X.Label.Text = "message size (bytes)"
	p.Y.Label.Text = "MB/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = sizeTicks{}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = false, false // the lower right is empty: small messages are slow
	p.Add(plotter.NewGrid())
	drawn := 0
	for _, s := range plotSeries {
		pts := s.points(rows)
		if len(pts) == 0 {
			continue
		}
		line, scatter, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, scatter.Color = s.color, s.color
		line.Width = vg.Points(1.5)
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			scatter.Shape = draw.RingGlyph{}
		} else {
			scatter.Shape = draw.CircleGlyph{}
		}
		p.Add(line, scatter)
		p.Legend.Add(s.label, line, scatter)
		drawn++
	}
	if drawn == 0 {
		return errors.New("no message results to draw")
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// sizeTicks mark the message sizes (64 B to 64 MiB) by name.
type sizeTicks struct{}

func (sizeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for n := int64(16); n <= 1<<30; n *= 4 {
		if float64(n) < lo || float64(n) > hi {
			continue
		}
		label := ""
		if n == 64 || n == suite.KiB || n == 64*suite.KiB || n == suite.MiB || n == 64*suite.MiB {
			label = suite.SizeName(n)
		}
		ts = append(ts, plot.Tick{Value: float64(n), Label: label})
	}
	return ts
}

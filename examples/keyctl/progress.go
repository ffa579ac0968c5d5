package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// progress reports how far a long operation is: a bar on a terminal,
// a plain line at most every few seconds (and at the end) otherwise.
type progress interface {
	// Set records done of total items (total -1: not known).
	Set(done, total int)
	// Finish ends the report (the bar's line, say).
	Finish()
}

// linesInterval is how often plain progress lines are written.
const linesInterval = 2 * time.Second

// newProgress returns the progress report --progress asks for, on stderr,
// for an operation named what counting unit.
func (a *app) newProgress(what, unit string) (progress, error) {
	mode := a.progress
	if mode == "auto" {
		mode = "lines"
		if f, ok := a.stderr.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
			mode = "bar"
		}
	}
	switch mode {
	case "bar":
		return &barProgress{w: a.stderr, what: what, unit: unit}, nil
	case "lines":
		return &linesProgress{w: a.stderr, what: what, unit: unit}, nil
	case "none":
		return noProgress{}, nil
	}
	return nil, usagef("--progress %q: want auto, bar, lines or none", a.progress)
}

type barProgress struct {
	w          io.Writer
	what, unit string
	bar        *progressbar.ProgressBar
}

func (p *barProgress) Set(done, total int) {
	if p.bar == nil {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.what),
			progressbar.OptionSetItsString(p.unit),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
	}
	if total >= 0 && int64(total) != p.bar.GetMax64() {
		p.bar.ChangeMax(total)
	}
	_ = p.bar.Set(done)
}

func (p *barProgress) Finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

type linesProgress struct {
	w           io.Writer
	what, unit  string
	last        time.Time
	done, total int
	set         bool // Set was called
	printed     bool // the last Set was printed
}

func (p *linesProgress) Set(done, total int) {
	p.done, p.total, p.set, p.printed = done, total, true, false
	if now := time.Now(); now.Sub(p.last) >= linesInterval || done == total {
		p.last = now
		p.line()
	}
}

func (p *linesProgress) line() {
	if p.total < 0 {
		fmt.Fprintf(p.w, "%s: %d %s\n", p.what, p.done, p.unit)
	} else {
		fmt.Fprintf(p.w, "%s: %d/%d %s\n", p.what, p.done, p.total, p.unit)
	}
	p.printed = true
}

func (p *linesProgress) Finish() {
	if p.set && !p.printed {
		p.line()
	}
}

type noProgress struct{}

func (noProgress) Set(int, int) {}
func (noProgress) Finish()      {}

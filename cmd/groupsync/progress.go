package main

// The progress of a plan or apply, on stderr: a live line on a terminal,
// a plain log line now and then otherwise. stdout carries only the report.
//
// The live line is github.com/schollz/progressbar/v3 rather than
// github.com/vbauerster/mpb/v8: groupsync shows one line at a time
// (reading, then adding, then deleting), which is all progressbar does —
// bar, count, rate, time left, clear on finish — with two small
// dependencies; mpb's strength, many bars at once through a decorator
// pipeline, would go unused.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/groupsync/groupsync/metrics"
	"github.com/groupsync/groupsync/sinks/openfga"
)

// progressMode is what --progress shows.
type progressMode int

const (
	progressOff progressMode = iota
	progressBar              // a live line on the terminal
	progressLog              // a log line every progressTiming.every
)

// progressTiming: how often the live line is redrawn; when a run has gone
// on long enough for its first log line (a short run gets none), and how
// often one follows. Tests shorten them.
var progressTiming = struct{ redraw, first, every time.Duration }{
	redraw: 200 * time.Millisecond, first: 5 * time.Second, every: 10 * time.Second,
}

// addProgressFlag adds --progress to plan or apply.
func addProgressFlag(cmd *cobra.Command, o *options) {
	cmd.Flags().StringVar(&o.progress, "progress", "auto",
		"progress on stderr: auto (a live line on a terminal, else a log line every 10s once a run passes 5s), log (those lines even on a terminal), false")
	cmd.Flags().Lookup("progress").NoOptDefVal = "auto"
}

// parseProgress turns --progress into a mode: the live line only when
// stderr is a terminal, since its control characters would litter a file
// or a log collector.
func parseProgress(flag string, stderr io.Writer) (progressMode, error) {
	switch flag {
	case "false", "off":
		return progressOff, nil
	case "log":
		return progressLog, nil
	case "auto", "true", "on", "":
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return progressBar, nil
		}
		return progressLog, nil
	}
	return progressOff, fmt.Errorf("--progress %q: use auto, log or false", flag)
}

// progress watches one run: the source's and OpenFGA's requests (counted
// by transport wrappers, see instrument.go) and the sink's writes (heard
// through openfga.WithWriteProgress). A nil *progress shows nothing.
type progress struct {
	mode          progressMode
	log           *zap.Logger
	start         time.Time
	sourceCounted bool // an HTTP source; LDAP and a file are not counted

	source, sink atomic.Int64 // requests sent

	mu         sync.Mutex
	write      openfga.WriteProgress // the latest phase; Op "" before any
	writeStart time.Time
	writes     int       // phases begun: each Apply call has one or two
	term       io.Writer // the terminal (bar mode)
	bar        *progressbar.ProgressBar
	barPhase   string // the phase bar draws: "read", or the number of a write phase
	logged     bool

	stop, stopped chan struct{}
	finished      sync.Once
}

// newProgress prepares the display of a run; it returns nil for
// progressOff. stderr is where the live line is drawn. begin starts it.
func newProgress(mode progressMode, stderr io.Writer, sourceCounted bool) *progress {
	if mode == progressOff {
		return nil
	}
	return &progress{mode: mode, sourceCounted: sourceCounted, term: stderr,
		stop: make(chan struct{}), stopped: make(chan struct{})}
}

// begin starts the display; log is where its log lines go.
func (p *progress) begin(log *zap.Logger) {
	if p == nil {
		return
	}
	p.log, p.start = log, time.Now()
	go p.loop()
}

func (p *progress) loop() {
	defer close(p.stopped)
	if p.mode == progressBar {
		p.every(progressTiming.redraw, p.draw)
		return
	}
	first := time.NewTimer(progressTiming.first)
	defer first.Stop()
	select {
	case <-p.stop:
		return
	case <-first.C:
	}
	p.logLine()
	p.every(progressTiming.every, p.logLine)
}

// every calls f every d until the display stops.
func (p *progress) every(d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// finish stops the display before the report is printed: the live line is
// erased; a run long enough for log lines gets a closing one.
func (p *progress) finish() {
	if p == nil || p.log == nil { // never begun
		return
	}
	p.finished.Do(p.end)
}

func (p *progress) end() {
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Clear()
		p.bar = nil
	}
	if p.mode == progressLog && (p.logged || time.Since(p.start) >= progressTiming.first) {
		p.log.Info("progress: done after "+roundDuration(time.Since(p.start)).String()+" ("+p.requestsLocked()+")",
			zap.Int64("source_requests", p.source.Load()), zap.Int64("openfga_requests", p.sink.Load()))
	}
}

// option makes newEngine count the source's and the sink's requests here.
func (p *progress) option() engineOption {
	return func(eo *engineOptions) { eo.progress = p }
}

// wrapper counts the requests of target (metrics.TargetSource or
// TargetSink) as they are sent.
func (p *progress) wrapper(target string) func(http.RoundTripper) http.RoundTripper {
	n := &p.sink
	if target == metrics.TargetSource {
		n = &p.source
	}
	return func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			n.Add(1)
			return base.RoundTrip(r)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// wrote is the sink's openfga.WithWriteProgress hook.
func (p *progress) wrote(w openfga.WriteProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.Done == 0 || w.Op != p.write.Op {
		p.writeStart = time.Now()
		p.writes++
	}
	p.write = w
}

// logWriter is where the logger writes while the live line is up: each
// log line first erases the live line, which the next redraw puts back
// under it, so the two never share a line.
func (p *progress) logWriter(w io.Writer) io.Writer {
	if p == nil || p.mode != progressBar {
		return w
	}
	return writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.bar != nil {
			_ = p.bar.Clear()
		}
		return w.Write(b)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// draw redraws the live line: a spinner with the requests while reading,
// a bar of the tuples answered of the phase's total while writing.
func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	phase, key := "read", "read"
	if p.write.Op != "" {
		// Each Apply call is a bar of its own: the ownership claims and
		// the adds are both adds, of different totals.
		phase, key = p.write.Op, fmt.Sprint(p.writes)
	}
	if p.bar == nil || key != p.barPhase {
		if p.bar != nil {
			_ = p.bar.Clear()
		}
		p.bar, p.barPhase = newBar(p.term, phase, p.write.Total), key
	}
	if phase == "read" {
		p.bar.Describe(p.readStatusLocked() + ", " + roundDuration(time.Since(p.start)).String())
		return
	}
	p.bar.Describe(writeStatus(p.write, time.Since(p.writeStart)))
	_ = p.bar.Set(p.write.Done)
}

// newBar is the live line of phase: for "read" a spinner (the total is not
// known), else a bar to total. The text beside it is ours (readStatus,
// writeStatus) so that the rate and the time left are the log lines'
// numbers, counted from the phase's start rather than the bar's.
func newBar(w io.Writer, phase string, total int) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionShowDescriptionAtLineEnd(),
		// Redrawn from draw alone: the library's own spinner goroutine
		// would draw at the same time as a log line.
		progressbar.OptionSetSpinnerChangeInterval(0),
	}
	if phase == "read" {
		return progressbar.NewOptions(-1, append(opts, progressbar.OptionSpinnerType(14), progressbar.OptionSetElapsedTime(false))...)
	}
	return progressbar.NewOptions(total, append(opts,
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionSetPredictTime(false),
	)...)
}

// logLine logs where the run is, for a log reader rather than a terminal.
func (p *progress) logLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logged = true
	fields := []zap.Field{zap.Int64("source_requests", p.source.Load()), zap.Int64("openfga_requests", p.sink.Load())}
	if p.write.Op == "" {
		p.log.Info("progress: "+p.readStatusLocked()+", "+roundDuration(time.Since(p.start)).String(), fields...)
		return
	}
	w := p.write
	fields = append(fields, zap.String("phase", w.Op), zap.Int("done", w.Done), zap.Int("total", w.Total))
	p.log.Info("progress: "+writeStatus(w, time.Since(p.writeStart)), fields...)
}

func (p *progress) readStatusLocked() string {
	return readStatus(p.sourceCounted, p.source.Load(), p.sink.Load())
}

func (p *progress) requestsLocked() string {
	return requests(p.sourceCounted, p.source.Load(), p.sink.Load())
}

// readStatus is the reading phase: the source and OpenFGA are read at the
// same time.
func readStatus(sourceCounted bool, source, sink int64) string {
	return "reading the source and OpenFGA (" + requests(sourceCounted, source, sink) + ")"
}

func requests(sourceCounted bool, source, sink int64) string {
	s := "OpenFGA " + plural(sink, "request")
	if sourceCounted {
		s = "source " + plural(source, "request") + ", " + s
	}
	return s
}

// writeStatus is a write phase after elapsed:
// "adding 12,000 of 82,000 tuples (6,100/s, ~11s left)".
func writeStatus(w openfga.WriteProgress, elapsed time.Duration) string {
	s := fmt.Sprintf("%s %s of %s tuples", phaseVerb(w.Op), count(int64(w.Done)), count(int64(w.Total)))
	rate, left, ok := eta(w.Done, w.Total, elapsed)
	if !ok {
		return s
	}
	s += " (" + count(int64(rate+0.5)) + "/s"
	if w.Done < w.Total {
		s += ", ~" + left.String() + " left"
	}
	return s + ")"
}

// eta is the rate so far and the time left at that rate; ok is false
// until there is a rate to tell.
func eta(done, total int, elapsed time.Duration) (rate float64, left time.Duration, ok bool) {
	if done <= 0 || elapsed <= 0 {
		return 0, 0, false
	}
	rate = float64(done) / elapsed.Seconds()
	left = roundDuration(time.Duration(float64(max(total-done, 0)) / rate * float64(time.Second)))
	if left == 0 && done < total {
		left = time.Second // never "~0s left" while tuples are still to go
	}
	return rate, left, true
}

// roundDuration keeps whole seconds: a person reads "1m5s", not "1m5.123s".
func roundDuration(d time.Duration) time.Duration { return d.Round(time.Second) }

func phaseVerb(op string) string {
	switch op {
	case "add":
		return "adding"
	case "delete":
		return "deleting"
	}
	return op
}

// numbers are printed with the English thousands separator, whatever the
// locale, so the lines are the same everywhere.
var numbers = message.NewPrinter(language.English)

func count(n int64) string { return numbers.Sprintf("%d", n) }

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return count(n) + " " + noun + "s"
}

// sourceCounted reports whether the source talks HTTP through the
// wrappers of instrument.go, so its requests can be counted.
func sourceCounted(sourceType string) bool {
	return strings.EqualFold(sourceType, "msgraph") || strings.EqualFold(sourceType, "authentik")
}

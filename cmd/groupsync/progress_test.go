package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

func TestProgressStatusLines(t *testing.T) {
	for _, tc := range []struct {
		w       openfga.WriteProgress
		elapsed time.Duration
		want    string
	}{
		{openfga.WriteProgress{Op: "add", Done: 12000, Total: 82000}, 2 * time.Second, "adding 12,000 of 82,000 tuples (6,000/s, ~12s left)"},
		{openfga.WriteProgress{Op: "add", Done: 0, Total: 82000}, 0, "adding 0 of 82,000 tuples"},
		{openfga.WriteProgress{Op: "add", Done: 0, Total: 82000}, time.Second, "adding 0 of 82,000 tuples"},
		{openfga.WriteProgress{Op: "delete", Done: 500, Total: 500}, 250 * time.Millisecond, "deleting 500 of 500 tuples (2,000/s)"},
		// Almost done: never "~0s left" while tuples are still to go.
		{openfga.WriteProgress{Op: "delete", Done: 999, Total: 1000}, time.Second, "deleting 999 of 1,000 tuples (999/s, ~1s left)"},
		{openfga.WriteProgress{Op: "add", Done: 100, Total: 1000000}, 10 * time.Second, "adding 100 of 1,000,000 tuples (10/s, ~27h46m30s left)"},
	} {
		if got := writeStatus(tc.w, tc.elapsed); got != tc.want {
			t.Errorf("writeStatus(%+v, %s) = %q, want %q", tc.w, tc.elapsed, got, tc.want)
		}
	}
	if got := readStatus(true, 1234, 1); got != "reading the source and OpenFGA (source 1,234 requests, OpenFGA 1 request)" {
		t.Error(got)
	}
	// LDAP and file sources send no HTTP: their requests are not counted.
	if got := readStatus(false, 0, 12); got != "reading the source and OpenFGA (OpenFGA 12 requests)" {
		t.Error(got)
	}
	if _, _, ok := eta(0, 10, time.Second); ok {
		t.Error("a rate before any tuple was written")
	}
}

func TestParseProgress(t *testing.T) {
	var buf bytes.Buffer // not a terminal
	for flag, want := range map[string]progressMode{"auto": progressLog, "true": progressLog, "log": progressLog, "false": progressOff} {
		if got, err := parseProgress(flag, &buf); err != nil || got != want {
			t.Errorf("--progress=%s: %v %v, want %v", flag, got, err, want)
		}
	}
	if _, err := parseProgress("bar", &buf); err == nil || !strings.Contains(err.Error(), "use auto, log or false") {
		t.Errorf("--progress=bar: %v", err)
	}
}

// The live line: a spinner with the requests while reading, then a bar of
// the phase, erased at the end and before each log line.
func TestProgressBarDraws(t *testing.T) {
	var term syncBuffer
	p := newProgress(progressBar, &term, true)
	logs := zap.New(zapCore(p.logWriter(&term)))
	p.begin(logs)
	p.source.Add(3)
	p.draw()
	if !strings.Contains(term.String(), "source 3 requests") {
		t.Fatalf("reading: %q", term.String())
	}
	p.wrote(openfga.WriteProgress{Op: "add", Done: 0, Total: 300})
	p.wrote(openfga.WriteProgress{Op: "add", Done: 100, Total: 300})
	p.draw()
	logs.Info("a warning mid-run")
	p.finish()
	out := term.String()
	for _, want := range []string{"33% |███", "adding 100 of 300 tuples (", "/s, ~", "\r"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q", want, out)
		}
	}
	// The log line starts on a line of its own: the bar was erased first.
	for _, seg := range strings.Split(out, "\r") {
		if strings.Contains(seg, "a warning mid-run") && (strings.Contains(seg, "adding") || strings.Contains(seg, "%")) {
			t.Errorf("log line shares the bar's line: %q", seg)
		}
	}
}

// Not on a terminal: plain log lines, no control characters, and a JSON
// report on stdout that stays clean.
func TestProgressLogLinesKeepStdoutClean(t *testing.T) {
	saved := progressTiming
	progressTiming.first, progressTiming.every = 0, time.Millisecond
	t.Cleanup(func() { progressTiming = saved })

	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	if code, _, errOut := cli(t, "model", "write", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatalf("model write: %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"apply", "-o", "json", "--progress=log"},
		{"plan", "-o", "json"}, // auto: stderr is no terminal here
	} {
		code, out, errOut := cli(t, append(args, "-c", cfg, "--log-format=console")...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
		var rep map[string]any
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: stdout is not one JSON document: %v\n%s", args, err, out)
		}
		if !strings.Contains(errOut, "progress: done after") {
			t.Errorf("%v: no progress line in\n%s", args, errOut)
		}
		for _, r := range errOut {
			if r < ' ' && r != '\n' && r != '\t' {
				t.Fatalf("%v: control character %q on stderr:\n%q", args, r, errOut)
			}
		}
	}
	// Off means off.
	_, _, errOut := cli(t, "plan", "-o", "json", "-c", cfg, "--progress=false")
	if strings.Contains(errOut, "progress:") {
		t.Errorf("--progress=false logged progress:\n%s", errOut)
	}
}

func zapCore(w io.Writer) zapcore.Core {
	return zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(w), zap.DebugLevel)
}

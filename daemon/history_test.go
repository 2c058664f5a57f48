package daemon

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gsync "github.com/groupsync/groupsync/sync"
)

func TestHistoryKeepsTheLastRunsAndEvents(t *testing.T) {
	h := newHistory()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2*historyRuns + 3 {
		h.run(RunRecord{Trigger: "schedule", Mode: ModeFull, Start: t0.Add(time.Duration(i) * time.Minute), SourceRead: &ReadMode{Mode: ModeFull}})
	}
	for i := range historyEvents + 7 {
		h.event(EventRecord{Time: t0.Add(time.Duration(i) * time.Second), Outcome: EventQueued})
	}
	runs, events, src := h.snapshot(t0.Add(time.Hour))
	if len(runs) != historyRuns || runs[0].ID != 2*historyRuns+3 || runs[historyRuns-1].ID != historyRuns+4 {
		t.Fatalf("runs: %d, newest %d, oldest %d", len(runs), runs[0].ID, runs[len(runs)-1].ID)
	}
	if len(events) != historyEvents || !events[0].Time.Equal(t0.Add(time.Duration(historyEvents+6)*time.Second)) {
		t.Fatalf("events: %d, newest %v", len(events), events[0].Time)
	}
	if src.StateAgeSeconds != nil || src.LastFullRead == nil {
		t.Fatalf("only full reads: %+v", src)
	}
	// An incremental read after the last full one: the state is as old as
	// that full read.
	h.run(RunRecord{Mode: ModeIncremental, Start: t0.Add(2 * time.Hour), SourceRead: &ReadMode{Mode: ModeIncremental}})
	_, _, src = h.snapshot(t0.Add(3 * time.Hour))
	full := t0.Add(time.Duration(2*historyRuns+2) * time.Minute)
	if src.StateAgeSeconds == nil || *src.StateAgeSeconds != t0.Add(3*time.Hour).Sub(full).Seconds() || src.LastRead.Mode != ModeIncremental {
		t.Fatalf("after an incremental read: %+v", src)
	}
	// A slice run says nothing of the full state.
	h.run(RunRecord{Mode: ModeSlice, Start: t0.Add(4 * time.Hour), SourceRead: &ReadMode{Mode: ModeFull}})
	if _, _, src = h.snapshot(t0.Add(5 * time.Hour)); src.LastRead.Mode != ModeIncremental {
		t.Fatalf("a slice run moved the source state: %+v", src)
	}
}

func TestEventKeyIsBounded(t *testing.T) {
	key := eventKey(Event{Kind: EventSlice, Slice: gsync.Slice{Users: []string{strings.Repeat("é", 300)}}})
	if len(key) > eventKeyLen+len("…") || !strings.HasPrefix(key, "user:é") || !strings.HasSuffix(key, "…") || !utf8.ValidString(key) {
		t.Fatalf("key %q (%d bytes)", key, len(key))
	}
}

package daemon

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// What GET /status shows of the past is kept in fixed-size rings, so that a
// daemon that runs for months holds the same few kilobytes.
const (
	historyRuns   = 20
	historyEvents = 50
	// historyGroups bounds the per-group counts kept of one run: a plan that
	// touches thousands of groups is summarised, not copied.
	historyGroups = 100
	// eventKeyLen bounds an event's keys as shown (a Graph notification may
	// name many groups).
	eventKeyLen = 200
)

// Run modes, as GET /status names them.
const (
	ModeFull        = "full"        // the whole tenant, read in full
	ModeIncremental = "incremental" // the whole tenant, from the source's changes
	ModeSlice       = "slice"       // users and groups that events named
	ModeApprove     = "approve"     // a quarantined plan an operator approved
)

// RunRecord is one finished run as GET /status shows it.
type RunRecord struct {
	ID              int64            `json:"id"` // counts runs since the daemon started; the page's anchors
	Trigger         string           `json:"trigger"`
	Mode            string           `json:"mode"`
	Start           time.Time        `json:"start"`
	DurationSeconds float64          `json:"duration_seconds"`
	Result          metrics.Result   `json:"result"`
	Summary         *gsync.Summary   `json:"summary,omitempty"`
	Applied         *Applied         `json:"applied,omitempty"`
	Guard           *gsync.GuardTrip `json:"guard,omitempty"`
	Error           string           `json:"error,omitempty"`
	// SourceRead says how the source read (full or incremental, and why
	// full); absent when the run did not get as far as a plan.
	SourceRead *ReadMode `json:"source_read,omitempty"`
	// TargetRead says how OpenFGA was read (sync.incremental): in full or
	// only the groups that changed, and how many groups each way.
	TargetRead *gsync.TargetRead `json:"target_read,omitempty"`
	// Slice is what an event run covered, or the approved plan of one.
	Slice *gsync.Slice `json:"slice,omitempty"`
	// PlanID is the id of the plan an approve run applied (the quarantine
	// names the plan a tripped guard kept).
	PlanID string `json:"plan_id,omitempty"`
	// Changes are the plan's changes per OpenFGA object (counts only: the
	// status page names groups, never users), at most historyGroups of
	// them; ChangesOmitted counts the rest.
	Changes        []GroupCount `json:"changes"`
	ChangesOmitted int          `json:"changes_omitted,omitempty"`
}

// ReadMode is how a run's source read.
type ReadMode struct {
	Mode   string `json:"mode"`
	Reason string `json:"reason,omitempty"`
}

// GroupCount is a plan's changes on one object (and, for a grant, one
// relation).
type GroupCount struct {
	Object   string `json:"object"`
	Relation string `json:"relation,omitempty"`
	Name     string `json:"name,omitempty"`
	Add      int    `json:"add"`
	Delete   int    `json:"delete"`
}

// groupCounts summarises a report's changes, at most limit of them.
func groupCounts(rep *gsync.Report, limit int) (counts []GroupCount, omitted int) {
	counts = []GroupCount{}
	if rep == nil {
		return counts, 0
	}
	for i, c := range rep.Changes {
		if i == limit {
			return counts, len(rep.Changes) - limit
		}
		counts = append(counts, GroupCount{Object: c.Object, Relation: c.Relation, Name: c.GroupName, Add: len(c.Add), Delete: len(c.Delete)})
	}
	return counts, 0
}

// EventRecord is one event request as GET /status shows it.
type EventRecord struct {
	Time   time.Time `json:"time"`
	Origin string    `json:"origin"` // generic, authentik, graph
	Kind   EventKind `json:"kind"`   // slice or delta
	// Key names the users and groups the event asked for ("user:alice",
	// "group:Sales"), cut at a few hundred bytes.
	Key string `json:"key,omitempty"`
	// Outcome: queued, coalesced (already waiting), dropped (the queue was
	// full), refused (the request named nothing valid).
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// Event outcomes.
const (
	EventQueued    = "queued"
	EventCoalesced = "coalesced"
	EventDropped   = "dropped"
	EventRefused   = "refused"
)

// eventKey is how an EventRecord names what e asked for.
func eventKey(e Event) string {
	var b strings.Builder
	add := func(kind string, names []string) {
		for _, n := range names {
			if b.Len() > eventKeyLen {
				return // cut below anyway: a notification may name thousands
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(kind + n)
		}
	}
	add("user:", e.Slice.Users)
	add("group:", e.Slice.Groups)
	key := b.String()
	if len(key) > eventKeyLen {
		cut := eventKeyLen
		for cut > 0 && !isRuneStart(key[cut]) {
			cut--
		}
		key = key[:cut] + "…"
	}
	return key
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ring keeps the last size values added.
type ring[T any] struct {
	items []T
	next  int
	size  int
}

func (r *ring[T]) add(v T) {
	if len(r.items) < r.size {
		r.items = append(r.items, v)
		return
	}
	r.items[r.next] = v
	r.next = (r.next + 1) % r.size
}

// newestFirst returns a copy, the last value added first.
func (r *ring[T]) newestFirst() []T {
	out := make([]T, 0, len(r.items))
	out = append(out, r.items[r.next:]...)
	out = append(out, r.items[:r.next]...)
	slices.Reverse(out)
	return out
}

// history is the daemon's memory of recent runs and events, and of the
// source's reads (the incremental state's age). Its methods are safe for
// concurrent use.
type history struct {
	mu        sync.Mutex
	runs      ring[RunRecord]
	events    ring[EventRecord]
	runID     int64
	lastRead  *ReadMode
	readAt    time.Time // when the run of lastRead ended
	lastFull  time.Time // when the last run that read the source in full ended
	lastIncrm time.Time // when the last incremental read ended
}

func newHistory() *history {
	return &history{runs: ring[RunRecord]{size: historyRuns}, events: ring[EventRecord]{size: historyEvents}}
}

// run records a finished run and returns it with its id.
func (h *history) run(rec RunRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runID++
	rec.ID = h.runID
	h.runs.add(rec)
	// A targeted run (or the approval of its plan) reads a slice: it says
	// nothing of the full state.
	if r := rec.SourceRead; r != nil && rec.Mode != ModeSlice && rec.Slice == nil {
		h.lastRead, h.readAt = r, rec.Start.Add(time.Duration(rec.DurationSeconds*float64(time.Second)))
		switch r.Mode {
		case ModeFull:
			h.lastFull = h.readAt
		case ModeIncremental:
			h.lastIncrm = h.readAt
		}
	}
}

// event records an event request.
func (h *history) event(e EventRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events.add(e)
}

// SourceState is what GET /status says of the source's reads: how the
// last full-tenant run read, and how old the state an incremental read
// builds on is (the time since the last full read).
type SourceState struct {
	LastRead *ReadMode `json:"last_read,omitempty"`
	// LastReadAt is when the run of LastRead ended.
	LastReadAt *time.Time `json:"last_read_at,omitempty"`
	// LastFullRead is when the last full read's run ended; an incremental
	// read applies changes on top of what that read found.
	LastFullRead *time.Time `json:"last_full_read,omitempty"`
	// StateAgeSeconds is how long ago LastFullRead was, when the source
	// has read incrementally since: the incremental state's age.
	StateAgeSeconds *float64 `json:"state_age_seconds,omitempty"`
}

// snapshot returns the recent runs and events, newest first, and the
// source's state as of now.
func (h *history) snapshot(now time.Time) (runs []RunRecord, events []EventRecord, src SourceState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	runs, events = h.runs.newestFirst(), h.events.newestFirst()
	if h.lastRead != nil {
		r, at := *h.lastRead, h.readAt
		src.LastRead, src.LastReadAt = &r, &at
	}
	if !h.lastFull.IsZero() {
		full := h.lastFull
		src.LastFullRead = &full
		if h.lastIncrm.After(h.lastFull) {
			age := now.Sub(full).Seconds()
			src.StateAgeSeconds = &age
		}
	}
	return runs, events, src
}

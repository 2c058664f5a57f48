package daemon

import (
	"errors"
	"time"

	gsync "github.com/groupsync/groupsync/sync"
)

// Events are what webhooks and the /sync endpoints turn requests into.
// They only ever queue work: one writer (the daemon's run loop) takes it,
// never two runs at once, through the same engine and guards as a
// scheduled run.

// EventKind says what an event asks for.
type EventKind string

const (
	// EventSlice asks for a targeted run of Event.Slice.
	EventSlice EventKind = "slice"
	// EventDelta asks for a run that reads the source's changes (a Graph
	// delta round from the last deltaLink): the source said something
	// changed but not exactly what.
	EventDelta EventKind = "delta"
)

// Event is one request for work, from a webhook or an endpoint.
type Event struct {
	Kind     EventKind
	Slice    gsync.Slice // EventSlice
	Origin   string      // "graph", "authentik", "generic": for logs and metrics
	Received time.Time   // when the request came in, for the change-to-apply lag
}

// ErrQueueFull is returned by an EventQueue that cannot take more work;
// the endpoint answers 503 with Retry-After, and the scheduled run still
// repairs whatever the event was about.
var ErrQueueFull = errors.New("the event queue is full")

// EventQueue takes events without blocking: it coalesces an event into
// one already waiting when it can, and refuses with ErrQueueFull when it
// is full.
type EventQueue interface {
	Enqueue(e Event) error
}

package daemon

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// Queue is the daemon's EventQueue: what events asked for and no run has
// taken yet, as a set of users, groups and one "read the delta" flag.
//
//   - Coalescing: an event for a user or group already waiting, or a delta
//     request while one waits, adds nothing and is counted as coalesced;
//     everything waiting runs as one targeted run, so a burst of webhooks
//     (a group edit touching fifty users) costs one source read.
//   - Bounds: at most size users, groups and delta requests wait; an event
//     that would add more is refused whole with ErrQueueFull (the endpoint
//     answers 503, the scheduled run repairs it). Enqueue never blocks: it
//     runs in HTTP handlers, which must answer the IdP at once.
//
// The daemon's run loop is its only consumer (take).
type Queue struct {
	m     *metrics.Metrics
	ready chan struct{} // something was queued: wakes the run loop

	mu       sync.Mutex
	size     int
	users    map[string]time.Time // key → the earliest Received
	groups   map[string]time.Time
	order    []item    // users and groups in arrival order, for a stable slice
	delta    time.Time // the earliest Received of a waiting delta request
	hasDelta bool
	since    time.Time // when the oldest waiting item was queued (the coalesce window)
	ticket   *ticket   // what the requests for the waiting items wait on
	// record, when set, is told of each event offered, with its outcome:
	// GET /status lists recent ones.
	record func(EventRecord)
}

type item struct {
	group bool
	key   string
}

// ticket resolves when the run that took a set of queued items has ended
// (or the daemon stopped before one did): ?wait=true answers with it.
type ticket struct {
	done    chan struct{}
	outcome Outcome
}

func newTicket() *ticket { return &ticket{done: make(chan struct{})} }

func (t *ticket) resolve(o Outcome) {
	t.outcome = o
	close(t.done)
}

// batch is what a run took from the queue.
type batch struct {
	slice    gsync.Slice
	delta    bool
	received []time.Time // per item, for groupsync_event_lag_seconds
	ticket   *ticket
}

// NewQueue returns an empty queue of size items (at least 1) that counts
// in m.
func NewQueue(size int, m *metrics.Metrics) *Queue {
	q := &Queue{m: m, ready: make(chan struct{}, 1), ticket: newTicket()}
	q.reset()
	q.SetSize(size)
	return q
}

func (q *Queue) reset() {
	q.users, q.groups, q.order, q.hasDelta, q.delta = map[string]time.Time{}, map[string]time.Time{}, nil, false, time.Time{}
}

// SetSize changes the bound (a config reload); items already waiting stay.
func (q *Queue) SetSize(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.size = max(n, 1)
}

// Len is how many users, groups and delta requests wait.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.depth()
}

func (q *Queue) depth() int {
	n := len(q.order)
	if q.hasDelta {
		n++
	}
	return n
}

// Enqueue queues e, coalescing it with what waits; see Queue.
func (q *Queue) Enqueue(e Event) error {
	_, _, err := q.enqueue(e)
	return err
}

// errEmptyEvent is an event that asks for nothing: a bug of its sender.
var errEmptyEvent = errors.New("the event names no user or group")

// enqueue queues e and returns the ticket of the run that will apply it
// and whether everything it asked for was already waiting.
func (q *Queue) enqueue(e Event) (t *ticket, coalesced bool, err error) {
	origin := e.Origin
	if origin == "" {
		origin = "unknown"
	}
	if e.Received.IsZero() {
		e.Received = time.Now()
	}
	var add []item
	switch e.Kind {
	case EventSlice:
		if e.Slice.Empty() {
			return nil, false, errEmptyEvent
		}
		for _, u := range e.Slice.Users {
			add = append(add, item{key: u})
		}
		for _, g := range e.Slice.Groups {
			add = append(add, item{group: true, key: g})
		}
	case EventDelta:
	default:
		return nil, false, fmt.Errorf("unknown event kind %q", e.Kind)
	}
	q.m.EventReceived(origin)
	defer func() {
		if q.record == nil {
			return
		}
		rec := EventRecord{Time: e.Received, Origin: origin, Kind: e.Kind, Key: eventKey(e)}
		switch {
		case errors.Is(err, ErrQueueFull):
			rec.Outcome = EventDropped
		case err != nil:
			rec.Outcome, rec.Reason = EventRefused, err.Error()
		case coalesced:
			rec.Outcome = EventCoalesced
		default:
			rec.Outcome = EventQueued
		}
		q.record(rec)
	}()

	q.mu.Lock()
	defer q.mu.Unlock()
	seen := map[item]bool{}
	fresh := add[:0:0]
	for _, it := range add {
		if seen[it] || q.has(it) {
			continue
		}
		seen[it] = true
		fresh = append(fresh, it)
	}
	newDelta := e.Kind == EventDelta && !q.hasDelta
	n := len(fresh)
	if newDelta {
		n++
	}
	if n == 0 {
		q.m.EventsCoalesced(1)
		return q.ticket, true, nil
	}
	if q.depth()+n > q.size {
		q.m.EventDropped()
		return nil, false, ErrQueueFull
	}
	if q.depth() == 0 {
		q.since = time.Now()
	}
	for _, it := range fresh {
		q.order = append(q.order, it)
		if it.group {
			q.groups[it.key] = e.Received
		} else {
			q.users[it.key] = e.Received
		}
	}
	if newDelta {
		q.hasDelta, q.delta = true, e.Received
	}
	q.m.SetEventQueueDepth(q.depth())
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return q.ticket, false, nil
}

func (q *Queue) has(it item) bool {
	var ok bool
	if it.group {
		_, ok = q.groups[it.key]
	} else {
		_, ok = q.users[it.key]
	}
	return ok
}

// waiting reports since when items wait, if any do.
func (q *Queue) waiting() (since time.Time, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.since, q.depth() > 0
}

// take empties the queue into a batch, or returns nil when nothing waits.
func (q *Queue) take() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.depth() == 0 {
		return nil
	}
	b := &batch{delta: q.hasDelta, ticket: q.ticket}
	for _, it := range q.order {
		if it.group {
			b.slice.Groups = append(b.slice.Groups, it.key)
			b.received = append(b.received, q.groups[it.key])
		} else {
			b.slice.Users = append(b.slice.Users, it.key)
			b.received = append(b.received, q.users[it.key])
		}
	}
	if q.hasDelta {
		b.received = append(b.received, q.delta)
	}
	q.reset()
	q.ticket = newTicket()
	q.m.SetEventQueueDepth(0)
	return b
}

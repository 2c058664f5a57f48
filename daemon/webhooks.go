package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// The event endpoints (daemon.webhooks.enabled, bearer daemon.webhooks.token):
//
//	POST /sync/user/{key}     queue a targeted run of one user, by the
//	                          mapping's user key or the source's id
//	POST /sync/group/{id}     queue a targeted run of one group, by name or id
//	POST /webhooks/authentik  authentik's notification webhook or an
//	                          expression policy's {"username": ...}
//
// Each answers 202 with what it queued, at once: the run loop applies it
// after daemon.webhooks.coalesce, or after the run in progress. ?wait=true
// answers when that run has ended, with its Outcome (200, or 500 when it
// did not succeed). 503 with Retry-After: the queue is full (the scheduled
// run repairs it) or the daemon is stopping. 400: the request names no
// valid user or group; the body says what was expected.

// Origins of events, the "origin" label of groupsync_events_received_total.
const (
	OriginGeneric   = "generic"
	OriginAuthentik = "authentik"
	OriginGraph     = "graph"
)

const (
	// maxEventBody bounds a webhook's body: authentik's notification is a
	// few hundred bytes, its body text at most a few kilobytes.
	maxEventBody = 64 << 10
	// maxKey bounds a user key or a group name or id.
	maxKey = 512
	// retryAfter is what a 503 asks a caller to wait; by then the run in
	// progress has usually ended and the queue drained.
	retryAfter = 30 * time.Second
)

// eventAnswer is the body of the event endpoints.
type eventAnswer struct {
	Queued *gsync.Slice `json:"queued,omitempty"`
	Origin string       `json:"origin,omitempty"`
	// Coalesced: everything the request named was already waiting.
	Coalesced bool     `json:"coalesced,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Outcome   *Outcome `json:"outcome,omitempty"`
}

// hookAllowed answers the request itself and returns false unless the
// event endpoints are on, it is a POST and it carries the bearer token.
func (d *Daemon) hookAllowed(w http.ResponseWriter, r *http.Request) bool {
	d.mu.Lock()
	g := gate{on: d.cfg.Daemon.Webhooks.Enabled, off: "the event endpoints are off (daemon.webhooks.enabled)", method: http.MethodPost,
		checkToken: true, token: d.hookToken, tokenField: "daemon.webhooks.token", refused: "event request refused: missing or wrong bearer token"}
	d.mu.Unlock()
	if !d.allow(w, r, g) {
		return false
	}
	// The /sync endpoints read no body, authentik's is small: never more.
	r.Body = http.MaxBytesReader(w, r.Body, maxEventBody)
	return true
}

// badEvent answers 400 (or status) and logs why, without the body: it may
// hold personal data, and the reason names what was wrong. GET /status
// lists it among the recent events.
func (d *Daemon) badEvent(w http.ResponseWriter, r *http.Request, origin string, status int, err error) {
	d.hist.event(EventRecord{Time: time.Now(), Origin: origin, Outcome: EventRefused, Reason: err.Error()})
	d.refuseEvent(w, r, status, err)
}

// refuseEvent answers status and logs why; the queue recorded the event.
func (d *Daemon) refuseEvent(w http.ResponseWriter, r *http.Request, status int, err error) {
	d.log.Warn("event request refused", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr),
		zap.Int("status", status), zap.Error(err))
	writeJSON(w, status, eventAnswer{Reason: err.Error()})
}

// serveSync serves POST /sync/user/{key} and POST /sync/group/{id}.
func (d *Daemon) serveSync(w http.ResponseWriter, r *http.Request) {
	if !d.hookAllowed(w, r) {
		return
	}
	s, err := parseSyncPath(r.URL.EscapedPath())
	if err != nil {
		d.badEvent(w, r, OriginGeneric, http.StatusBadRequest, err)
		return
	}
	d.queueEvent(w, r, Event{Kind: EventSlice, Slice: s, Origin: OriginGeneric, Received: time.Now()})
}

// queueEvent enqueues e and answers: 202, or the outcome with ?wait=true.
func (d *Daemon) queueEvent(w http.ResponseWriter, r *http.Request, e Event) {
	d.mu.Lock()
	stopping := d.stopping
	d.mu.Unlock()
	if stopping {
		writeJSON(w, http.StatusServiceUnavailable, eventAnswer{Reason: "the daemon is stopping"})
		return
	}
	t, coalesced, err := d.q.enqueue(e)
	if errors.Is(err, ErrQueueFull) {
		d.log.Warn("event dropped: the queue is full (daemon.webhooks.queue_size); the scheduled run repairs it",
			zap.String("origin", e.Origin), zap.Int("users", len(e.Slice.Users)), zap.Int("groups", len(e.Slice.Groups)))
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
		writeJSON(w, http.StatusServiceUnavailable, eventAnswer{Reason: ErrQueueFull.Error() + " (daemon.webhooks.queue_size); retry later"})
		return
	}
	if err != nil {
		d.refuseEvent(w, r, http.StatusBadRequest, err)
		return
	}
	d.log.Debug("event queued", zap.String("origin", e.Origin), zap.Strings("users", e.Slice.Users),
		zap.Strings("groups", e.Slice.Groups), zap.Bool("coalesced", coalesced))
	answer := eventAnswer{Queued: &e.Slice, Origin: e.Origin, Coalesced: coalesced}
	if wait, _ := strconv.ParseBool(r.URL.Query().Get("wait")); !wait {
		writeJSON(w, http.StatusAccepted, answer)
		return
	}
	select {
	case <-t.done:
		answer.Outcome = &t.outcome
	case <-d.halted:
		o := notRun(TriggerEvent)
		answer.Outcome = &o
	case <-r.Context().Done():
		return // the event stays queued; the caller left
	}
	status := http.StatusOK
	if answer.Outcome.Result != metrics.ResultOK {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, answer)
}

// parseSyncPath reads the user or group of a /sync request from its
// escaped path: /sync/user/{key} or /sync/group/{id}, where a key holding
// "/" is escaped as %2F.
func parseSyncPath(escaped string) (gsync.Slice, error) {
	const want = "expected /sync/user/{key} or /sync/group/{id} (escape / in a key as %2F)"
	rest, ok := strings.CutPrefix(escaped, "/sync/")
	if !ok {
		return gsync.Slice{}, errors.New(want)
	}
	kind, raw, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(raw, "/") || (kind != "user" && kind != "group") {
		return gsync.Slice{}, errors.New(want)
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		return gsync.Slice{}, fmt.Errorf("the %s in the path is not validly escaped: %v; %s", kind, err, want)
	}
	if err := checkKey(kind, key); err != nil {
		return gsync.Slice{}, err
	}
	if kind == "user" {
		return gsync.Slice{Users: []string{key}}, nil
	}
	return gsync.Slice{Groups: []string{key}}, nil
}

// checkKey accepts a user key or group name or id: not blank, at most
// maxKey bytes of UTF-8 without control characters. Anything else cannot
// name a user or group, and would only cost a source read.
func checkKey(what, key string) error {
	switch {
	case strings.TrimSpace(key) == "":
		return fmt.Errorf("the %s is empty", what)
	case len(key) > maxKey:
		return fmt.Errorf("the %s is longer than %d bytes", what, maxKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("the %s is not UTF-8", what)
	case strings.ContainsFunc(key, unicode.IsControl):
		return fmt.Errorf("the %s holds a control character", what)
	}
	return nil
}

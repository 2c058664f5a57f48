package daemon

import (
	"net/http"
	"strings"
	"time"
)

// GET /status (daemon.status.enabled; with daemon.status.require_token,
// daemon.trigger's bearer token) says what the daemon did and will do:
// the recent runs with their plans per group, the quarantined plan
// awaiting approval, the next run, the source's incremental state and the
// recent events. A browser (Accept: text/html) gets a page with no
// scripts and no external assets; anything else, or ?format=json, gets
// the JSON document Status. It is read-only; it names groups, and the
// users an event or event run named (their keys), but lists no tuple:
// the tuples of a quarantined plan are behind the trigger token (GET
// /quarantine/plan).

// StatusFormatVersion is the version of the Status document. It changes
// only when a field is removed or changes meaning; new fields may appear.
const StatusFormatVersion = 1

// Status is the JSON document of GET /status.
type Status struct {
	FormatVersion int        `json:"format_version"`
	Generated     time.Time  `json:"generated"`
	Instance      string     `json:"instance,omitempty"` // sync.ownership.instance
	Schedule      string     `json:"schedule"`
	NextRun       *time.Time `json:"next_run,omitempty"`
	// Running is the run in progress, if any.
	Running *RunningRun `json:"running,omitempty"`
	// LastSuccess is when the last successful full run ended.
	LastSuccess *time.Time  `json:"last_success,omitempty"`
	Quarantine  *Quarantine `json:"quarantine,omitempty"`
	// CanApprove: POST /quarantine/approve is on (daemon.trigger.enabled)
	// and the daemon writes (not --dry-run).
	CanApprove bool          `json:"can_approve"`
	Source     SourceState   `json:"source"`
	QueueDepth int           `json:"event_queue_depth"`
	Runs       []RunRecord   `json:"runs"`   // newest first, at most 20
	Events     []EventRecord `json:"events"` // newest first, at most 50
}

// RunningRun is a run in progress.
type RunningRun struct {
	Trigger string    `json:"trigger"`
	Since   time.Time `json:"since"`
}

// Status returns the daemon's status as of now.
func (d *Daemon) Status(now time.Time) Status {
	runs, events, src := d.hist.snapshot(now)
	st := Status{FormatVersion: StatusFormatVersion, Generated: now.UTC(), Source: src, QueueDepth: d.q.Len(), Runs: runs, Events: events}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.Instance, st.Schedule = d.cfg.Sync.Ownership.Instance, d.cfg.Daemon.Schedule
	st.CanApprove = d.cfg.Daemon.Trigger.Enabled && d.opts.ApplySaved != nil
	if !d.nextRun.IsZero() {
		next := d.nextRun
		st.NextRun = &next
	}
	if c := d.current; c != nil {
		st.Running = &RunningRun{Trigger: c.trigger, Since: c.started}
	}
	if !d.lastSuccess.IsZero() {
		ls := d.lastSuccess
		st.LastSuccess = &ls
	}
	if q := d.quarantine; q != nil {
		c := *q
		st.Quarantine = &c
	}
	return st
}

func (d *Daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	g := gate{on: d.cfg.Daemon.Status.Enabled, off: "the status page is off (daemon.status.enabled)", checkToken: d.cfg.Daemon.Status.RequireToken,
		token: d.token, tokenField: "daemon.trigger.token; daemon.status.require_token", refused: "GET /status refused: missing or wrong bearer token"}
	d.mu.Unlock()
	if !d.allow(w, r, g) {
		return
	}
	st := d.Status(time.Now())
	w.Header().Set("Cache-Control", "no-store")
	if wantsHTML(r) {
		renderStatusPage(w, r, st)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// wantsHTML reports whether r asks for the page rather than the JSON:
// ?format=html, or a browser's Accept header without ?format=json.
func wantsHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return false
	case "html":
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

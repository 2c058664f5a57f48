package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

const hookToken = "fedcba9876543210-hooks"

// hooks is the daemon config of the event tests: webhooks on, a 2s
// coalesce window, no run at start.
func hooks(extra string) string {
	return `{schedule: "@hourly", run_at_start: false, jitter: 0s, webhooks: {enabled: true, token: ` + hookToken + `, coalesce: 2s` + extra + `}}`
}

// pause sleeps d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sliceRuns records the targeted runs, in the same books as runs (r.active,
// r.overlap), so that a full run and an event run at once show.
type sliceRuns struct {
	r      *runs
	mu     sync.Mutex
	starts []time.Time
	slices []gsync.Slice
	do     func(ctx context.Context, s gsync.Slice) (*gsync.Report, error)
}

func (s *sliceRuns) run(ctx context.Context, _ *config.Config, sl gsync.Slice) (*gsync.Report, error) {
	s.r.mu.Lock()
	s.r.active++
	if s.r.active > 1 {
		s.r.overlap = true
	}
	s.r.mu.Unlock()
	defer func() {
		s.r.mu.Lock()
		s.r.active--
		s.r.mu.Unlock()
	}()
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.slices = append(s.slices, sl)
	do := s.do
	s.mu.Unlock()
	if do != nil {
		return do(ctx, sl)
	}
	return &gsync.Report{Command: "apply", Summary: gsync.Summary{SourceUsers: len(sl.Users)}, Result: &gsync.ApplyResult{}}, nil
}

func (s *sliceRuns) got() ([]time.Time, []gsync.Slice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.starts), slices.Clone(s.slices)
}

// startEvents starts a daemon with RunSlice and the extra handlers.
func startEvents(t *testing.T, daemonYAML string, r *runs, s *sliceRuns, handlers map[string]http.Handler) *harness {
	t.Helper()
	l := &loader{}
	l.set(parse(t, daemonYAML), nil)
	core, logs := observer.New(zap.DebugLevel)
	m := metrics.New()
	s.r = r
	d, err := daemon.New(daemon.Options{Load: l.load, Run: r.run, RunSlice: s.run, Metrics: m, Log: zap.New(core), Progress: -1, Handlers: handlers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, d: d, m: m, l: l, r: r, logs: logs, t0: time.Now(), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- d.Run(ctx, nil) }()
	synctest.Wait()
	return h
}

func post(t *testing.T, h http.Handler, path, auth, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// postAsync serves a request that waits (?wait=true) in the background.
func postAsync(h http.Handler, path, body string) <-chan *httptest.ResponseRecorder {
	out := make(chan *httptest.ResponseRecorder, 1)
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+hookToken)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out <- rec
	}()
	return out
}

func (h *harness) histogram(name string) (count uint64, sum float64) {
	h.t.Helper()
	mf, err := h.m.Registry().Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range mf {
		if f.GetName() == name {
			for _, mt := range f.Metric {
				return mt.Histogram.GetSampleCount(), mt.Histogram.GetSampleSum()
			}
		}
	}
	return 0, 0
}

type answer struct {
	Queued    *gsync.Slice
	Origin    string
	Coalesced bool
	Reason    string
	Outcome   *daemon.Outcome
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("%d %q: %v", rec.Code, rec.Body, err)
	}
	return a
}

// A burst becomes one targeted run after the coalesce window; the lag runs
// from each request to the end of that run.
func TestEventsCoalesceIntoOneRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		s.do = func(context.Context, gsync.Slice) (*gsync.Report, error) {
			time.Sleep(time.Second)
			return &gsync.Report{Command: "apply", Result: &gsync.ApplyResult{Added: 2}}, nil
		}
		h := startEvents(t, hooks(""), r, s, nil)
		defer h.stop()
		srv := h.d.Handler()
		auth := "Bearer " + hookToken
		rec := post(t, srv, "/sync/user/alice", auth, "")
		if a := decode(t, rec); rec.Code != 202 || a.Queued == nil || !slices.Equal(a.Queued.Users, []string{"alice"}) || a.Origin != "generic" || a.Coalesced {
			t.Fatalf("POST /sync/user/alice: %d %s", rec.Code, rec.Body)
		}
		time.Sleep(500 * time.Millisecond)
		post(t, srv, "/sync/group/Sales%20Team", auth, "")
		post(t, srv, "/webhooks/authentik", auth, `{"username": "bob"}`) // key username below
		rec = post(t, srv, "/sync/user/alice", auth, "")
		if a := decode(t, rec); rec.Code != 202 || !a.Coalesced {
			t.Fatalf("the same user again: %d %s", rec.Code, rec.Body)
		}
		if starts, _ := s.got(); len(starts) != 0 {
			t.Fatal("a run started inside the coalesce window")
		}
		time.Sleep(3 * time.Second)
		starts, got := s.got()
		if len(starts) != 1 || starts[0].Sub(h.t0) != 2*time.Second {
			t.Fatalf("event runs at %v, want one at 2s (the first event's window)", starts)
		}
		// bob is not there: the default mapping.user.key (id) cannot take a
		// username, so the authentik request was refused (422).
		if !slices.Equal(got[0].Users, []string{"alice"}) || !slices.Equal(got[0].Groups, []string{"Sales Team"}) {
			t.Fatalf("the run's slice %+v", got[0])
		}
		if len(r.offsets(h.t0)) != 0 {
			t.Fatal("an event ran a full run")
		}
		// alice waited 3s (2s window and the 1s run), the group 2.5s.
		if n, sum := h.histogram("groupsync_event_lag_seconds"); n != 2 || sum != 5.5 {
			t.Fatalf("lag: %d observations, sum %v", n, sum)
		}
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"groupsync_events_received_total", []string{"origin", "generic"}, 3},
			{"groupsync_events_coalesced_total", nil, 1},
			{"groupsync_event_queue_depth", nil, 0},
			{"groupsync_run_triggers_total", []string{"trigger", "event", "outcome", "started"}, 1},
			{"groupsync_runs_total", []string{"result", "ok"}, 1},
			{"groupsync_tuples_written_total", []string{"operation", "add"}, 2},
			// A targeted run leaves the full runs' times alone.
			{"groupsync_last_success_timestamp_seconds", nil, 0},
		} {
			if got := h.counter(c.name, c.labels...); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if ready, _ := h.d.Readiness(time.Now()); ready {
			t.Error("an event run made the daemon ready: readiness is the full runs'")
		}
	})
}

// An event that comes during a full run waits and runs right after it; a
// tick that comes during an event run waits for it and then covers what
// queued meanwhile. Never two runs at once.
func TestEventsAndScheduledRunsNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		r.do = func(ctx context.Context) (*gsync.Report, error) {
			return &gsync.Report{Command: "apply"}, pause(ctx, 5*time.Minute)
		}
		s.do = func(ctx context.Context, _ gsync.Slice) (*gsync.Report, error) {
			return &gsync.Report{Command: "apply"}, pause(ctx, time.Minute)
		}
		h := startEvents(t, `{schedule: "@every 10m", run_at_start: false, jitter: 0s, webhooks: {enabled: true, token: `+hookToken+`, coalesce: 2s}}`, r, s, nil)
		defer h.stop()
		srv := h.d.Handler()
		auth := "Bearer " + hookToken

		time.Sleep(11 * time.Minute) // the full run of 10m is 1m in
		waited := postAsync(srv, "/sync/user/alice?wait=true", "")
		time.Sleep(time.Minute)
		post(t, srv, "/sync/user/bob", auth, "")
		time.Sleep(5 * time.Minute) // to 17m: the full run ended at 15m, alice and bob's at 15m..16m
		starts, got := s.got()
		if len(starts) != 1 || starts[0].Sub(h.t0) != 15*time.Minute || !slices.Equal(got[0].Users, []string{"alice", "bob"}) {
			t.Fatalf("event runs at %v: %+v", starts, got)
		}
		rec := <-waited
		if a := decode(t, rec); rec.Code != 200 || a.Outcome == nil || a.Outcome.Trigger != "event" || a.Outcome.Result != metrics.ResultOK ||
			a.Outcome.End.Sub(h.t0) != 16*time.Minute {
			t.Fatalf("?wait=true: %d %s", rec.Code, rec.Body)
		}

		// An event run from 19m30s to 20m30s; the 20m tick waits for it.
		time.Sleep(2*time.Minute + 28*time.Second)
		post(t, srv, "/sync/user/carol", auth, "")
		time.Sleep(time.Minute) // 20m28s: carol's run is on, the tick deferred
		post(t, srv, "/sync/group/eng", auth, "")
		if _, ok := h.d.Trigger(daemon.TriggerHTTP); ok {
			t.Fatal("a second full run was deferred behind the event run; one is enough")
		}
		time.Sleep(10 * time.Minute)
		// Full runs at 10m and 20m30s (the deferred tick; the POST /run
		// during the event run found it deferred already and was skipped).
		if got := r.offsets(h.t0); len(got) != 3 || got[0] != 10*time.Minute || got[1] != 20*time.Minute+30*time.Second || got[2] != 30*time.Minute {
			t.Fatalf("full runs at %v", got)
		}
		// The group queued during carol's run was covered by the full run.
		if starts, got := s.got(); len(starts) != 2 || !slices.Equal(got[1].Users, []string{"carol"}) {
			t.Fatalf("event runs %v %+v", starts, got)
		}
		if h.counter("groupsync_events_coalesced_total") != 1 {
			t.Fatalf("coalesced %v: the group covered by the full run", h.counter("groupsync_events_coalesced_total"))
		}
		if h.counter("groupsync_run_triggers_total", "trigger", "http", "outcome", "skipped") != 1 {
			t.Fatal("the refused POST /run is not counted")
		}
		if r.overlap {
			t.Fatal("two runs overlapped")
		}
		if h.logs.FilterMessage("run deferred: an event run is in progress; it starts when that one ends").Len() != 1 {
			t.Fatal("the deferred tick is not logged")
		}
	})
}

// A full queue answers 503 with Retry-After and counts the drop; the HTTP
// handler never waits for room.
func TestEventQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		gate := make(chan struct{})
		s.do = func(context.Context, gsync.Slice) (*gsync.Report, error) { <-gate; return &gsync.Report{}, nil }
		h := startEvents(t, hooks(", queue_size: 2"), r, s, nil)
		defer h.stop()
		srv := h.d.Handler()
		auth := "Bearer " + hookToken
		post(t, srv, "/sync/user/first", auth, "")
		time.Sleep(3 * time.Second) // first's run holds the loop
		for _, u := range []string{"a", "b"} {
			if rec := post(t, srv, "/sync/user/"+u, auth, ""); rec.Code != 202 {
				t.Fatalf("%s: %d", u, rec.Code)
			}
		}
		rec := post(t, srv, "/sync/user/c", auth, "")
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "30" || !strings.Contains(rec.Body.String(), "daemon.webhooks.queue_size") {
			t.Fatalf("a full queue: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
		if rec := post(t, srv, "/sync/user/a", auth, ""); rec.Code != 202 {
			t.Fatalf("a duplicate in a full queue: %d", rec.Code)
		}
		if h.counter("groupsync_events_dropped_total") != 1 || h.counter("groupsync_event_queue_depth") != 2 {
			t.Fatal("metrics of the full queue")
		}
		close(gate)
		time.Sleep(3 * time.Second) // a's coalesce window ends 2s after it came
		if _, got := s.got(); len(got) != 2 || !slices.Equal(got[1].Users, []string{"a", "b"}) {
			t.Fatalf("runs %+v", got)
		}
	})
}

func TestEventEndpointsAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		h := startEvents(t, `{schedule: "@hourly", run_at_start: false, trigger: {enabled: true, token: `+token+`}}`, r, s, nil)
		defer h.stop()
		for _, p := range []string{"/sync/user/a", "/webhooks/authentik"} {
			if rec := post(t, h.d.Handler(), p, "Bearer "+hookToken, `{"username": "a"}`); rec.Code != 404 {
				t.Fatalf("%s while off: %d", p, rec.Code)
			}
		}
		h.l.set(parse(t, `{schedule: "@hourly", run_at_start: false, trigger: {enabled: true, token: `+token+`}, webhooks: {enabled: true, token: `+hookToken+`}}`), nil)
		if err := h.d.Reload(); err != nil {
			t.Fatal(err)
		}
		srv := h.d.Handler()
		for _, p := range []string{"/sync/user/a", "/sync/group/g", "/webhooks/authentik"} {
			// The trigger's token does not open the event endpoints.
			for _, auth := range []string{"", "Bearer", "Bearer " + token, "Bearer " + hookToken + "x", "Basic " + hookToken, hookToken} {
				rec := post(t, srv, p, auth, `{"username": "a"}`)
				if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
					t.Fatalf("%s with %q: %d", p, auth, rec.Code)
				}
			}
			if rec := get(t, srv, "GET", p, "Bearer "+hookToken); rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
				t.Fatalf("GET %s: %d", p, rec.Code)
			}
		}
		// Nor does the events' token open POST /run.
		if rec := post(t, srv, "/run", "Bearer "+hookToken, ""); rec.Code != 401 {
			t.Fatalf("POST /run with the events' token: %d", rec.Code)
		}
		if h.counter("groupsync_events_received_total", "origin", "generic") != 0 || h.logs.FilterMessage("event request refused: missing or wrong bearer token").Len() != 18 {
			t.Fatal("refused requests reached the queue, or were not logged")
		}
		if rec := post(t, srv, "/sync/user/a", "bearer "+hookToken, ""); rec.Code != 202 {
			t.Fatalf("the right token: %d", rec.Code)
		}
		for _, e := range h.logs.All() {
			if strings.Contains(e.Message+toString(e.ContextMap()), hookToken) {
				t.Fatalf("the token is in the log: %s %v", e.Message, e.ContextMap())
			}
		}
	})
}

// Bad requests are refused with what was expected, and logged; none panics
// or queues anything.
func TestEventBadRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		h := startEvents(t, hooks(""), r, s, nil)
		defer h.stop()
		srv := h.d.Handler()
		auth := "Bearer " + hookToken
		for _, tc := range []struct {
			path, body string
			status     int
			says       string
		}{
			{"/sync/user/", "", 400, "the user is empty"},
			{"/sync/users/a", "", 400, "expected /sync/user/{key} or /sync/group/{id}"},
			{"/sync/user/a/b", "", 400, "expected /sync/user/{key}"},
			{"/sync/user/a%00", "", 400, "control character"},
			{"/webhooks/authentik", "", 400, "not a JSON object"},
			{"/webhooks/authentik", "model_updated: {'model': ...}", 400, "not a JSON object"},
			{"/webhooks/authentik", `{"severity": "notice"}`, 400, `expected a JSON object with "username", "email", "user" or "group"`},
			{"/webhooks/authentik", `{"username": ["a"]}`, 400, `"username" is not a string`},
			{"/webhooks/authentik", `{"username": "` + strings.Repeat("a", 70000) + `"}`, 413, "larger than 65536 bytes"},
			// The default mapping.user.key is id: a username cannot name the user.
			{"/webhooks/authentik", `{"username": "alice"}`, 422, "mapping.user.key is id"},
		} {
			rec := post(t, srv, tc.path, auth, tc.body)
			if a := decode(t, rec); rec.Code != tc.status || !strings.Contains(a.Reason, tc.says) {
				t.Errorf("%s %.40q: %d %s, want %d ...%s...", tc.path, tc.body, rec.Code, rec.Body, tc.status, tc.says)
			}
		}
		if n := h.logs.FilterMessage("event request refused").Len(); n != 10 {
			t.Errorf("%d log lines for 10 refused requests", n)
		}
		time.Sleep(time.Minute)
		if starts, _ := s.got(); len(starts) != 0 || h.counter("groupsync_event_queue_depth") != 0 {
			t.Fatal("a refused request queued a run")
		}
	})
}

// authentik's notification and a policy's JSON, with the user key
// username (and group names).
func TestAuthentikWebhook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		h := startEvents(t, hooks(""), r, s, nil)
		defer h.stop()
		c := parse(t, hooks(""))
		c.Mapping.User.Key = "username"
		h.l.set(c, nil)
		if err := h.d.Reload(); err != nil {
			t.Fatal(err)
		}
		srv := h.d.Handler()
		auth := "Bearer " + hookToken
		for _, body := range []string{
			`{"body": "login: {}", "severity": "notice", "user_email": "akadmin@x", "user_username": "akadmin", "event_user_email": "alice@x", "event_user_username": "alice"}`,
			`{"username": "bob"}`,
			`{"group": "Sales Team"}`,
		} {
			if rec := post(t, srv, "/webhooks/authentik", auth, body); rec.Code != 202 || decode(t, rec).Origin != "authentik" {
				t.Fatalf("%s: %d %s", body, rec.Code, rec.Body)
			}
		}
		time.Sleep(3 * time.Second)
		if _, got := s.got(); len(got) != 1 || !slices.Equal(got[0].Users, []string{"alice", "bob"}) || !slices.Equal(got[0].Groups, []string{"Sales Team"}) {
			t.Fatalf("runs %+v", got)
		}
		if h.counter("groupsync_events_received_total", "origin", "authentik") != 3 {
			t.Fatal("origin authentik not counted")
		}
	})
}

// An event does not get past a guard: its run goes through the engine's
// guards, and a trip is a guard result like a full run's.
func TestEventGuardTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		s.do = func(context.Context, gsync.Slice) (*gsync.Report, error) {
			return &gsync.Report{Command: "apply", Summary: gsync.Summary{ToDelete: 40}},
				&gsync.GuardError{Trip: &gsync.GuardTrip{Guard: gsync.GuardMaxDeletes, Message: "40 deletes exceed daemon max_deletes 10"}}
		}
		h := startEvents(t, hooks(""), r, s, nil)
		defer h.stop()
		rec := <-postAsync(h.d.Handler(), "/sync/group/eng?wait=true", "")
		a := decode(t, rec)
		if rec.Code != 500 || a.Outcome == nil || a.Outcome.Result != metrics.ResultGuard || !strings.Contains(a.Outcome.Error, "max_deletes") ||
			a.Outcome.Summary == nil || a.Outcome.Summary.ToDelete != 40 {
			t.Fatalf("?wait=true on a guard trip: %d %s", rec.Code, rec.Body)
		}
		if h.counter("groupsync_guard_trips_total", "guard", "max_deletes") != 1 || h.counter("groupsync_runs_total", "result", "guard") != 1 ||
			h.counter("groupsync_tuples_planned_total", "operation", "delete") != 40 || h.counter("groupsync_tuples_written_total", "operation", "delete") != 0 {
			t.Fatal("the guard trip is not in the metrics")
		}
		if n, _ := h.histogram("groupsync_event_lag_seconds"); n != 0 {
			t.Fatal("a stopped run's events counted as applied")
		}
		if l := h.logs.FilterMessage("run finished").All(); len(l) != 1 || l[0].ContextMap()["guard"] != "max_deletes" || l[0].ContextMap()["trigger"] != "event" {
			t.Fatalf("summary %v", l)
		}
	})
}

// The hook for other webhook receivers (Graph change notifications): a
// handler mounted on the listener enqueues an EventDelta into Queue; it
// runs as a full Run, coalesced with another delta.
func TestExtraHandlerEnqueuesDelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		var d *daemon.Daemon
		graph := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if err := d.Queue().Enqueue(daemon.Event{Kind: daemon.EventDelta, Origin: daemon.OriginGraph, Received: time.Now()}); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
		// Off: the extra handler is served all the same; it authenticates
		// requests itself.
		h := startEvents(t, `{schedule: "@hourly", run_at_start: false, jitter: 0s}`, r, s, map[string]http.Handler{"POST /webhooks/graph": graph})
		defer h.stop()
		d = h.d
		h.d.Handle("POST /webhooks/extra", graph)
		h.d.Handle("/run", graph) // conflicts with the daemon's own: left out, logged
		srv := h.d.Handler()
		for _, p := range []string{"/webhooks/graph", "/webhooks/extra"} {
			if rec := post(t, srv, p, "", ""); rec.Code != 202 {
				t.Fatalf("%s: %d", p, rec.Code)
			}
		}
		if h.logs.FilterMessage("extra handler not mounted").Len() != 1 {
			t.Fatal("the conflicting pattern is not logged")
		}
		time.Sleep(3 * time.Second)
		if got := r.offsets(h.t0); len(got) != 1 || got[0] != 2*time.Second {
			t.Fatalf("full runs at %v, want one after the 2s coalesce window", got)
		}
		if starts, _ := s.got(); len(starts) != 0 || h.counter("groupsync_events_received_total", "origin", "graph") != 2 ||
			h.counter("groupsync_events_coalesced_total") != 1 {
			t.Fatal("a delta ran as a slice, or was not coalesced")
		}
	})
}

// Stopping answers whoever waits for a queued event, and refuses new ones.
func TestStopAnswersQueuedEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, s := &runs{}, &sliceRuns{}
		h := startEvents(t, `{schedule: "@hourly", run_at_start: false, webhooks: {enabled: true, token: `+hookToken+`, coalesce: 30s}}`, r, s, nil)
		defer h.stop()
		srv := h.d.Handler()
		waited := postAsync(srv, "/sync/user/alice?wait=true", "")
		time.Sleep(time.Second)
		h.stop()
		rec := <-waited
		if a := decode(t, rec); rec.Code != 500 || a.Outcome == nil || !strings.Contains(a.Outcome.Error, "the daemon stopped") {
			t.Fatalf("a waiter at stop: %d %s", rec.Code, rec.Body)
		}
		if rec := post(t, srv, "/sync/user/bob", "Bearer "+hookToken, ""); rec.Code != 503 {
			t.Fatalf("an event after stop: %d", rec.Code)
		}
		if starts, _ := s.got(); len(starts) != 0 {
			t.Fatal("an event ran while stopping")
		}
	})
}

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

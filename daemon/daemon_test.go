package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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

// The tests below run in synctest bubbles: time is fake and jumps ahead
// whenever every goroutine waits, so an hour of schedule takes no time and
// every instant is exact.

const baseConfig = `source: {type: file, file: {path: tenant.yaml}}
openfga: {api_url: "http://127.0.0.1:8080", store_name: demo}
`

const token = "0123456789abcdef-token"

func parse(t *testing.T, daemonYAML string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(baseConfig+"daemon: "+daemonYAML+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loader is a LoadFunc whose config the test swaps.
type loader struct {
	mu  sync.Mutex
	cfg *config.Config
	err error
}

func (l *loader) set(c *config.Config, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg, l.err = c, err
}

func (l *loader) load() (*config.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg, l.err
}

// runs is a RunFunc that records when each run started and never lets two
// overlap unnoticed.
type runs struct {
	mu      sync.Mutex
	starts  []time.Time
	configs []*config.Config
	active  int
	overlap bool
	// do is the run itself; nil succeeds at once with an empty report.
	do func(ctx context.Context) (*gsync.Report, error)
}

func (r *runs) run(ctx context.Context, cfg *config.Config) (*gsync.Report, error) {
	r.mu.Lock()
	r.starts = append(r.starts, time.Now())
	r.configs = append(r.configs, cfg)
	r.active++
	if r.active > 1 {
		r.overlap = true
	}
	do := r.do
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active--
		r.mu.Unlock()
	}()
	if do != nil {
		return do(ctx)
	}
	return &gsync.Report{Command: "apply", Summary: gsync.Summary{SourceGroups: 3}, Result: &gsync.ApplyResult{}}, nil
}

// offsets returns the run starts as durations since t0.
func (r *runs) offsets(t0 time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, len(r.starts))
	for i, s := range r.starts {
		out[i] = s.Sub(t0)
	}
	return out
}

// harness is a daemon started in the bubble. Stop it before the bubble's
// function returns (defer h.stop()): time stops with that function, so a
// T.Cleanup would be too late.
type harness struct {
	t      *testing.T
	d      *daemon.Daemon
	m      *metrics.Metrics
	l      *loader
	r      *runs
	logs   *observer.ObservedLogs
	t0     time.Time
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, daemonYAML string, r *runs, jitter func(time.Duration) time.Duration) *harness {
	t.Helper()
	l := &loader{}
	l.set(parse(t, daemonYAML), nil)
	core, logs := observer.New(zap.DebugLevel)
	m := metrics.New()
	d, err := daemon.New(daemon.Options{Load: l.load, Run: r.run, Metrics: m, Log: zap.New(core), Jitter: jitter, Progress: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, d: d, m: m, l: l, r: r, logs: logs, t0: time.Now(), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- d.Run(ctx, nil) }()
	synctest.Wait()
	return h
}

// stop cancels the daemon's context and returns how long Run took to
// return.
func (h *harness) stop() time.Duration {
	begin := time.Now()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil // later calls return at once
	case <-time.After(time.Hour):
		h.t.Fatal("Run did not return within an hour of fake time")
	}
	return time.Since(begin)
}

func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	mf, err := h.m.Registry().Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range mf {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, mt := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range mt.Label {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			}
		}
	}
	return 0
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{}
		h := start(t, `{schedule: "@every 10m", run_at_start: false, jitter: 0s}`, r, nil)
		defer h.stop()
		time.Sleep(35 * time.Minute)
		if got := r.offsets(h.t0); !equal(got, []time.Duration{10 * time.Minute, 20 * time.Minute, 30 * time.Minute}) {
			t.Fatalf("runs at %v", got)
		}
		if next := h.counter("groupsync_next_run_timestamp_seconds"); next != float64(h.t0.Add(40*time.Minute).Unix()) {
			t.Fatalf("next run %v", next)
		}
		if n := h.counter("groupsync_runs_total", "result", "ok"); n != 3 {
			t.Fatalf("%v ok runs", n)
		}
	})
}

func TestCronScheduleWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{}
		var asked []time.Duration
		jitter := func(n time.Duration) time.Duration { asked = append(asked, n); return n / 2 }
		h := start(t, `{schedule: "*/15 * * * *", run_at_start: false, jitter: 2m}`, r, jitter)
		defer h.stop()
		time.Sleep(50 * time.Minute)
		h.stop()
		// Every quarter hour, each a minute late: half the 2m jitter.
		if got := r.offsets(h.t0); !equal(got, []time.Duration{16 * time.Minute, 31 * time.Minute, 46 * time.Minute}) {
			t.Fatalf("runs at %v", got)
		}
		// No drift: each run is planned from the schedule, not from the
		// jittered start. Four plans: three runs and the one pending.
		if len(asked) != 4 || asked[0] != 2*time.Minute {
			t.Fatalf("jitter asked %v", asked)
		}
	})
}

func TestDefaultJitterIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{}
		h := start(t, `{schedule: "@every 10m", run_at_start: false, jitter: 3m}`, r, nil)
		defer h.stop()
		time.Sleep(10*time.Hour + 5*time.Minute)
		h.stop()
		got := r.offsets(h.t0)
		if len(got) != 60 {
			t.Fatalf("%d runs in 10h", len(got))
		}
		spread := false
		for i, o := range got {
			slot := time.Duration(i+1) * 10 * time.Minute
			if o < slot || o >= slot+3*time.Minute {
				t.Fatalf("run %d at %s, outside [%s, %s)", i, o, slot, slot+3*time.Minute)
			}
			spread = spread || o != slot
		}
		if !spread {
			t.Fatal("no run was jittered")
		}
	})
}

func TestRunAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{}
		h := start(t, `{schedule: "@hourly", run_at_start: true, jitter: 0s}`, r, nil)
		defer h.stop()
		time.Sleep(90 * time.Minute)
		if got := r.offsets(h.t0); !equal(got, []time.Duration{0, time.Hour}) {
			t.Fatalf("runs at %v", got)
		}
		if h.counter("groupsync_run_triggers_total", "trigger", "start", "outcome", "started") != 1 {
			t.Fatal("the start trigger is not counted")
		}
	})
}

// A tick that comes during a run is skipped and counted; the schedule goes
// on; a manual trigger is refused too.
func TestSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{do: func(ctx context.Context) (*gsync.Report, error) {
			select {
			case <-time.After(25 * time.Minute):
				return &gsync.Report{}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
		h := start(t, `{schedule: "@every 10m", run_at_start: true, jitter: 0s}`, r, nil)
		defer h.stop()
		time.Sleep(time.Minute)
		if _, ok := h.d.Trigger(daemon.TriggerHTTP); ok {
			t.Fatal("a second run started during the first")
		}
		if h.counter("groupsync_run_in_progress") != 1 {
			t.Fatal("run_in_progress is not 1 during a run")
		}
		time.Sleep(34 * time.Minute)
		// Runs at 0 (to 25m), ticks at 10m and 20m skipped, a run at 30m.
		if got := r.offsets(h.t0); !equal(got, []time.Duration{0, 30 * time.Minute}) {
			t.Fatalf("runs at %v", got)
		}
		if r.overlap {
			t.Fatal("two runs overlapped")
		}
		for _, c := range []struct {
			trigger, outcome string
			want             float64
		}{{"start", "started", 1}, {"schedule", "skipped", 2}, {"schedule", "started", 1}, {"http", "skipped", 1}} {
			if got := h.counter("groupsync_run_triggers_total", "trigger", c.trigger, "outcome", c.outcome); got != c.want {
				t.Errorf("triggers %s/%s = %v, want %v", c.trigger, c.outcome, got, c.want)
			}
		}
		if n := h.logs.FilterMessage("run skipped: another run is in progress").Len(); n != 3 {
			t.Errorf("%d skip log lines", n)
		}
	})
}

func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{}
		h := start(t, `{schedule: "@every 1h", run_at_start: false, jitter: 0s}`, r, nil)
		defer h.stop()
		time.Sleep(10 * time.Minute)

		// A new schedule applies from the reload on.
		fast := parse(t, `{schedule: "@every 5m", run_at_start: false, jitter: 0s}`)
		h.l.set(fast, nil)
		if err := h.d.Reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Minute) // to 21m
		if got := r.offsets(h.t0); !equal(got, []time.Duration{15 * time.Minute, 20 * time.Minute}) {
			t.Fatalf("runs at %v", got)
		}
		if r.configs[1] != fast {
			t.Fatal("the run after a reload did not get the new config")
		}

		// An invalid config is refused; the old one stays and says so.
		h.l.set(nil, errors.New(`config groupsync.yaml: daemon.schedule: "nope" does not parse`))
		if err := h.d.Reload(); err == nil {
			t.Fatal("Reload accepted an invalid config")
		}
		time.Sleep(5 * time.Minute) // to 26m: the 5m schedule goes on
		if got := r.offsets(h.t0); len(got) != 3 || got[2] != 25*time.Minute || r.configs[2] != fast {
			t.Fatalf("runs at %v after a refused reload", got)
		}
		if h.d.Config() != fast {
			t.Fatal("the refused config replaced the good one")
		}
		if h.counter("groupsync_config_last_reload_successful") != 0 || h.counter("groupsync_config_reloads_total", "result", "error") != 1 {
			t.Fatal("the refused reload is not in the metrics")
		}
		ready, detail := h.d.Readiness(time.Now())
		if !ready || !strings.Contains(strings.Join(detail, "\n"), `refused, still on the config loaded at 2000-01-01T00:10:00Z: config groupsync.yaml: daemon.schedule: "nope" does not parse`) {
			t.Fatalf("readiness %v %q", ready, detail)
		}
		if h.logs.FilterMessage("config reload refused; keeping the config loaded before").Len() != 1 {
			t.Fatal("the refused reload is not logged")
		}

		// A trigger token that cannot be read is refused the same way.
		bad := parse(t, `{schedule: "@every 5m", trigger: {enabled: true, token_file: `+t.TempDir()+`}}`)
		h.l.set(bad, nil)
		if err := h.d.Reload(); err == nil || !strings.Contains(err.Error(), "daemon.trigger.token_file") {
			t.Fatalf("reload with an unreadable token file: %v", err)
		}

		// Fixed: all good again.
		h.l.set(parse(t, `{schedule: "@every 1h"}`), nil)
		if err := h.d.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, detail := h.d.Readiness(time.Now()); strings.Contains(strings.Join(detail, "\n"), "refused") {
			t.Fatalf("readiness after a good reload: %q", detail)
		}
		if h.counter("groupsync_config_last_reload_successful") != 1 || h.counter("groupsync_config_reloads_total", "result", "ok") != 2 {
			t.Fatal("the good reload is not in the metrics")
		}
	})
}

// slowTransport answers after delay unless the request's context ends.
type slowTransport struct {
	delay time.Duration
	mu    sync.Mutex
	sent  int
}

func (s *slowTransport) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *slowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.sent++
	s.mu.Unlock()
	select {
	case <-time.After(s.delay):
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
}

// requester is a run that sends requests one after the other through
// DrainTransport, as the sink sends write chunks, until one fails.
func requester(tr http.RoundTripper, results chan<- error) func(ctx context.Context) (*gsync.Report, error) {
	client := &http.Client{Transport: daemon.DrainTransport(tr)}
	return func(ctx context.Context) (*gsync.Report, error) {
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://openfga.invalid/write", nil)
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			results <- err
			if err != nil {
				return nil, err
			}
		}
	}
}

// SIGTERM (the context ending) lets the request in flight finish and sends
// no new one; Run returns as soon as the run has.
func TestShutdownLetsRequestsInFlightFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &slowTransport{delay: 10 * time.Second}
		results := make(chan error, 10)
		r := &runs{do: requester(tr, results)}
		h := start(t, `{schedule: "@hourly", run_at_start: true, shutdown_grace: 30s}`, r, nil)
		defer h.stop()
		time.Sleep(12 * time.Second) // one request done, the second 2s in
		took := h.stop()
		if took != 8*time.Second {
			t.Fatalf("Run returned %s after the signal, want 8s (the request in flight)", took)
		}
		if err := <-results; err != nil {
			t.Fatalf("first request: %v", err)
		}
		if err := <-results; err != nil {
			t.Fatalf("the request in flight was cut off: %v", err)
		}
		if err := <-results; !errors.Is(err, context.Canceled) {
			t.Fatalf("a request after the signal: %v", err)
		}
		if n := tr.requests(); n != 2 {
			t.Fatalf("%d requests reached the server, want 2", n)
		}
		if h.counter("groupsync_runs_total", "result", "error") != 1 {
			t.Fatal("the stopped run is not counted")
		}
	})
}

// Past the grace period the request in flight is cancelled and Run returns.
func TestShutdownGraceIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &slowTransport{delay: time.Hour}
		results := make(chan error, 10)
		r := &runs{do: requester(tr, results)}
		h := start(t, `{schedule: "@hourly", run_at_start: true, shutdown_grace: 5s}`, r, nil)
		defer h.stop()
		time.Sleep(time.Second)
		if took := h.stop(); took != 5*time.Second {
			t.Fatalf("Run returned %s after the signal, want the 5s grace", took)
		}
		if err := <-results; !errors.Is(err, context.Canceled) {
			t.Fatalf("request in flight after the grace period: %v", err)
		}
		if h.logs.FilterMessage("grace period over; cancelling the requests in flight").Len() != 1 {
			t.Fatal("not logged")
		}
	})
}

// Even a run that ignores its context does not hold the daemon up.
func TestShutdownDoesNotWaitForeverForARun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		r := &runs{do: func(context.Context) (*gsync.Report, error) { <-release; return nil, errors.New("late") }}
		h := start(t, `{schedule: "@hourly", run_at_start: true, shutdown_grace: 10s}`, r, nil)
		defer h.stop()
		if took := h.stop(); took != 15*time.Second {
			t.Fatalf("Run returned %s after the signal, want grace 10s + 5s", took)
		}
		if h.logs.FilterMessage("the run did not stop; exiting without it").Len() != 1 {
			t.Fatal("not logged")
		}
		close(release)
		synctest.Wait()
	})
}

func TestShutdownWithoutARun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `{schedule: "@hourly", run_at_start: false}`, &runs{}, nil)
		defer h.stop()
		if took := h.stop(); took != 0 {
			t.Fatalf("idle daemon took %s to stop", took)
		}
		if _, ok := h.d.Trigger(daemon.TriggerHTTP); ok {
			t.Fatal("a stopped daemon started a run")
		}
	})
}

func TestDrainTransportOutsideTheDaemon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := &http.Client{Transport: daemon.DrainTransport(&slowTransport{delay: time.Minute})}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x.invalid/", nil)
		begin := time.Now()
		if _, err := client.Do(req); !errors.Is(err, context.DeadlineExceeded) || time.Since(begin) != time.Second {
			t.Fatalf("plan and apply keep their context: %v after %s", err, time.Since(begin))
		}
	})
}

func get(t *testing.T, h http.Handler, method, path, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthAndReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		r := &runs{}
		r.do = func(context.Context) (*gsync.Report, error) {
			if fail.Load() {
				return nil, errors.New("read source: HTTP 503")
			}
			return &gsync.Report{Command: "apply"}, nil
		}
		// Readiness lasts 2x the hour between runs.
		h := start(t, `{schedule: "@hourly", run_at_start: false, jitter: 0s}`, r, nil)
		defer h.stop()
		srv := h.d.Handler()
		if rec := get(t, srv, "GET", "/healthz", ""); rec.Code != 200 || rec.Body.String() != "ok\n" {
			t.Fatalf("/healthz %d %q", rec.Code, rec.Body)
		}
		if rec := get(t, srv, "GET", "/readyz", ""); rec.Code != 503 || !strings.Contains(rec.Body.String(), "no successful run yet") {
			t.Fatalf("/readyz before a run: %d %q", rec.Code, rec.Body)
		}
		time.Sleep(61 * time.Minute)
		if rec := get(t, srv, "GET", "/readyz", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "last successful run ended 1m0s ago") {
			t.Fatalf("/readyz after a run: %d %q", rec.Code, rec.Body)
		}
		fail.Store(true)
		time.Sleep(time.Hour) // a failed run at 2h: still ready
		rec := get(t, srv, "GET", "/readyz", "")
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "did not succeed: error") {
			t.Fatalf("/readyz after one failed run: %d %q", rec.Code, rec.Body)
		}
		time.Sleep(time.Hour) // a second failure at 3h: 2h1m since the success
		if rec := get(t, srv, "GET", "/readyz", ""); rec.Code != 503 {
			t.Fatalf("/readyz after two failed runs: %d %q", rec.Code, rec.Body)
		}
		if rec := get(t, srv, "GET", "/metrics", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `groupsync_runs_total{result="error"} 2`) {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		h.stop()
		if rec := get(t, srv, "GET", "/readyz", ""); rec.Code != 503 || !strings.Contains(rec.Body.String(), "shutting down") {
			t.Fatalf("/readyz when stopping: %d %q", rec.Code, rec.Body)
		}
	})
}

func TestReadyBeforeFirstRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `{schedule: "@hourly", run_at_start: false, ready_before_first_run: true}`, &runs{}, nil)
		defer h.stop()
		if rec := get(t, h.d.Handler(), "GET", "/readyz", ""); rec.Code != 200 {
			t.Fatalf("/readyz %d %q", rec.Code, rec.Body)
		}
	})
}

func TestRunEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var fail atomic.Bool
		r := &runs{}
		r.do = func(context.Context) (*gsync.Report, error) {
			<-gate
			if fail.Load() {
				return nil, &gsync.GuardError{Trip: &gsync.GuardTrip{Guard: gsync.GuardMaxDeletes, Message: "too many"}}
			}
			return &gsync.Report{Command: "apply", Summary: gsync.Summary{ToAdd: 4}, Result: &gsync.ApplyResult{Added: 4, Requests: 1}}, nil
		}
		h := start(t, `{schedule: "@hourly", run_at_start: false}`, r, nil)
		defer h.stop()
		if rec := get(t, h.d.Handler(), "POST", "/run", "Bearer "+token); rec.Code != 404 {
			t.Fatalf("POST /run while off: %d", rec.Code)
		}

		h.l.set(parse(t, `{schedule: "@hourly", run_at_start: false, trigger: {enabled: true, token: `+token+`}}`), nil)
		if err := h.d.Reload(); err != nil {
			t.Fatal(err)
		}
		srv := h.d.Handler()
		if rec := get(t, srv, "GET", "/run", "Bearer "+token); rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
			t.Fatalf("GET /run: %d", rec.Code)
		}
		for _, auth := range []string{"", "Bearer", "Bearer wrong-token-0123456789", "Basic " + token, token} {
			rec := get(t, srv, "POST", "/run", auth)
			if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("POST /run with %q: %d", auth, rec.Code)
			}
		}
		if len(r.offsets(h.t0)) != 0 {
			t.Fatal("a refused trigger started a run")
		}

		rec := get(t, srv, "POST", "/run", "Bearer "+token)
		if rec.Code != 202 || !strings.Contains(rec.Body.String(), `"started": true`) {
			t.Fatalf("POST /run: %d %s", rec.Code, rec.Body)
		}
		synctest.Wait()
		if rec := get(t, srv, "POST", "/run", "bearer "+token); rec.Code != 409 {
			t.Fatalf("POST /run during a run: %d %s", rec.Code, rec.Body)
		}
		close(gate)
		synctest.Wait()

		// ?wait=true answers with the outcome; a guard trip is a 500.
		rec = get(t, srv, "POST", "/run?wait=true", "Bearer "+token)
		var answer struct {
			Started bool
			Outcome daemon.Outcome
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != 200 || answer.Outcome.Result != metrics.ResultOK ||
			answer.Outcome.Trigger != "http" || answer.Outcome.Applied.Added != 4 || answer.Outcome.Summary.ToAdd != 4 {
			t.Fatalf("POST /run?wait=true: %d %s", rec.Code, rec.Body)
		}
		fail.Store(true)
		rec = get(t, srv, "POST", "/run?wait=1", "Bearer "+token)
		if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"result": "guard"`) || !strings.Contains(rec.Body.String(), "too many") {
			t.Fatalf("POST /run?wait=1 on a guard trip: %d %s", rec.Code, rec.Body)
		}
		if h.counter("groupsync_guard_trips_total", "guard", "max_deletes") != 1 || h.counter("groupsync_run_triggers_total", "trigger", "http", "outcome", "started") != 3 {
			t.Fatal("metrics")
		}
		for _, e := range h.logs.All() {
			for k, v := range e.ContextMap() {
				if strings.Contains(e.Message+k+toString(v), token) {
					t.Fatalf("the token is in the log: %s %v", e.Message, e.ContextMap())
				}
			}
		}
		h.stop()
		if rec := get(t, srv, "POST", "/run", "Bearer "+token); rec.Code != 503 {
			t.Fatalf("POST /run after stop: %d", rec.Code)
		}
	})
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// One summary line per run, with the counts, the time and the requests.
func TestSummaryLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h *harness
		r := &runs{}
		r.do = func(context.Context) (*gsync.Report, error) {
			// What a real run's transports and source would count.
			tr := h.m.Transport(metrics.TargetSink, &slowTransport{delay: 3 * time.Second})
			req, _ := http.NewRequest(http.MethodPost, "http://openfga.invalid/write", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			h.m.ObserveSource(metrics.SourceStats{Retries: 2, Throttled: 1, Waited: 1500 * time.Millisecond})
			return &gsync.Report{Command: "apply", Summary: gsync.Summary{SourceGroups: 7, ToAdd: 3},
				Result: &gsync.ApplyResult{Added: 3, Requests: 1}}, nil
		}
		h = start(t, `{schedule: "@hourly", run_at_start: false}`, r, nil)
		defer h.stop()
		if _, ok := h.d.Trigger(daemon.TriggerHTTP); !ok {
			t.Fatal("not started")
		}
		time.Sleep(4 * time.Second)
		lines := h.logs.FilterMessage("run finished").All()
		if len(lines) != 1 {
			t.Fatalf("%d summary lines", len(lines))
		}
		f := lines[0].ContextMap()
		if f["result"] != "ok" || f["trigger"] != "http" || f["took"] != 3*time.Second || f["sink_requests"] != int64(1) ||
			f["source_groups"] != int64(7) || f["added"] != int64(3) || f["source_retries"] != int64(2) ||
			f["source_retry_wait"] != 1500*time.Millisecond || f["write_requests"] != int64(1) {
			t.Fatalf("summary %v", f)
		}
	})
}

func TestProgressLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &loader{}
		l.set(parse(t, `{schedule: "@hourly", run_at_start: true}`), nil)
		core, logs := observer.New(zap.InfoLevel)
		r := &runs{do: func(context.Context) (*gsync.Report, error) {
			time.Sleep(3*time.Minute + time.Second)
			return &gsync.Report{}, nil
		}}
		d, err := daemon.New(daemon.Options{Load: l.load, Run: r.run, Log: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx, nil) }()
		time.Sleep(5 * time.Minute)
		cancel()
		<-done
		if n := logs.FilterMessage("run in progress").Len(); n != 3 {
			t.Fatalf("%d progress lines in a run of 3m1s, want one a minute", n)
		}
	})
}

func TestNewNeedsAValidConfig(t *testing.T) {
	_, err := daemon.New(daemon.Options{Load: func() (*config.Config, error) { return nil, errors.New("config: bad") }, Run: (&runs{}).run})
	if err == nil {
		t.Fatal("New accepted a failing loader")
	}
	if _, err := daemon.New(daemon.Options{}); err == nil {
		t.Fatal("New without Load and Run")
	}
	// A missing token file at start is an error too.
	c := parse(t, `{trigger: {enabled: true, token: `+token+`}}`)
	c.Daemon.Trigger.Token, c.Daemon.Trigger.TokenFile = "", "/nonexistent/token"
	if _, err := daemon.New(daemon.Options{Load: func() (*config.Config, error) { return c, nil }, Run: (&runs{}).run}); err == nil {
		t.Fatal("New with an unreadable token file")
	}
}

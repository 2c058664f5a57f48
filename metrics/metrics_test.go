package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

func TestResultOf(t *testing.T) {
	guard := &gsync.GuardError{Trip: &gsync.GuardTrip{Guard: gsync.GuardMaxDeletes, Message: "too many"}}
	for _, tc := range []struct {
		err  error
		want metrics.Result
	}{
		{nil, metrics.ResultOK},
		{errors.New("read source: boom"), metrics.ResultError},
		{guard, metrics.ResultGuard},
		{fmt.Errorf("run: %w", guard), metrics.ResultGuard},
		{fmt.Errorf("lease: %w", gsync.ErrLeaseBusy), metrics.ResultBusy},
		{context.Canceled, metrics.ResultError},
	} {
		if got := metrics.ResultOf(tc.err); got != tc.want {
			t.Errorf("ResultOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func report(skips []gsync.Skip, withheld []gsync.Withheld, result *gsync.ApplyResult) *gsync.Report {
	return &gsync.Report{
		Command: "apply",
		Summary: gsync.Summary{SourceGroups: 7, SourceUsers: 8, ManagedGroups: 5, DesiredTuples: 10, ExistingTuples: 3,
			ToAdd: 9, ToDelete: 2, Skipped: len(skips), Withheld: len(withheld)},
		Skipped:  skips,
		Withheld: withheld,
		Result:   result,
	}
}

func TestObserveRun(t *testing.T) {
	m := metrics.New()
	end := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tuple := gsync.Tuple{User: "user:a", Relation: "member", Object: "group:x"}
	rep := report(
		[]gsync.Skip{{Kind: "group", Reason: gsync.ReasonExcluded}, {Kind: "group", Reason: gsync.ReasonExcluded}, {Kind: "user", Reason: gsync.ReasonDisabled}},
		[]gsync.Withheld{{Op: "delete", Tuple: tuple, Reason: gsync.ReasonAddsFailed}},
		&gsync.ApplyResult{Added: 8, Deleted: 0, Requests: 3, Failed: []gsync.TupleError{{Op: "add", Tuple: tuple, Error: "HTTP 400"}}},
	)
	m.ObserveSource(metrics.SourceStats{Requests: 12, BatchItems: 40, Retries: 3, Throttled: 2, Waited: 1500 * time.Millisecond})
	res := m.ObserveRun(metrics.Run{Report: rep, Err: errors.New("apply: 1 tuples failed"), End: end, Duration: 90 * time.Second})
	if res != metrics.ResultError {
		t.Fatalf("result %s", res)
	}
	want := `
# HELP groupsync_runs_total Runs by result: ok, error, guard (a guard stopped the run), busy (another run held the lease).
# TYPE groupsync_runs_total counter
groupsync_runs_total{result="busy"} 0
groupsync_runs_total{result="error"} 1
groupsync_runs_total{result="guard"} 0
groupsync_runs_total{result="ok"} 0
# HELP groupsync_tuples_planned_total Tuple changes planned, by operation (add, delete).
# TYPE groupsync_tuples_planned_total counter
groupsync_tuples_planned_total{operation="add"} 9
groupsync_tuples_planned_total{operation="delete"} 2
# HELP groupsync_tuples_written_total Tuple changes written to OpenFGA, by operation.
# TYPE groupsync_tuples_written_total counter
groupsync_tuples_written_total{operation="add"} 8
groupsync_tuples_written_total{operation="delete"} 0
# HELP groupsync_tuples_failed_total Tuple changes that failed to write, by operation.
# TYPE groupsync_tuples_failed_total counter
groupsync_tuples_failed_total{operation="add"} 1
groupsync_tuples_failed_total{operation="delete"} 0
# HELP groupsync_skipped Groups, users and members the last planned run skipped, by kind and reason.
# TYPE groupsync_skipped gauge
groupsync_skipped{kind="group",reason="excluded"} 2
groupsync_skipped{kind="user",reason="disabled"} 1
# HELP groupsync_withheld Changes the last planned run did not make, by operation and reason.
# TYPE groupsync_withheld gauge
groupsync_withheld{operation="delete",reason="adds_failed"} 1
# HELP groupsync_source_groups Groups the source returned in the last planned run.
# TYPE groupsync_source_groups gauge
groupsync_source_groups 7
# HELP groupsync_source_users Users the source returned in the last planned run.
# TYPE groupsync_source_users gauge
groupsync_source_users 8
# HELP groupsync_managed_groups Groups mapped to OpenFGA objects in the last planned run.
# TYPE groupsync_managed_groups gauge
groupsync_managed_groups 5
# HELP groupsync_source_requests_total Requests the source sent, retries included, whatever the protocol (HTTP requests, LDAP searches); HTTP ones also count in http_requests_total.
# TYPE groupsync_source_requests_total counter
groupsync_source_requests_total 12
# HELP groupsync_source_retries_total Source requests and batch items retried (throttling, 5xx, dropped connections).
# TYPE groupsync_source_retries_total counter
groupsync_source_retries_total 3
# HELP groupsync_source_throttled_total Source answers 429 Too Many Requests (HTTP or batch item).
# TYPE groupsync_source_throttled_total counter
groupsync_source_throttled_total 2
# HELP groupsync_source_retry_wait_seconds_total Time the source spent waiting to retry (Retry-After and backoff).
# TYPE groupsync_source_retry_wait_seconds_total counter
groupsync_source_retry_wait_seconds_total 1.5
# HELP groupsync_last_success_timestamp_seconds When the last successful run ended, in Unix seconds; 0 before the first.
# TYPE groupsync_last_success_timestamp_seconds gauge
groupsync_last_success_timestamp_seconds 0
`
	names := []string{"groupsync_runs_total", "groupsync_tuples_planned_total", "groupsync_tuples_written_total",
		"groupsync_tuples_failed_total", "groupsync_skipped", "groupsync_withheld", "groupsync_source_groups",
		"groupsync_source_users", "groupsync_managed_groups", "groupsync_source_requests_total", "groupsync_source_retries_total", "groupsync_source_throttled_total",
		"groupsync_source_retry_wait_seconds_total", "groupsync_last_success_timestamp_seconds"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}

	// A successful run: the skip reason that went away has no series any
	// more, the counters add up, the success time is set.
	rep2 := report([]gsync.Skip{{Kind: "user", Reason: gsync.ReasonDisabled}}, nil, &gsync.ApplyResult{Added: 1, Deleted: 2})
	if res := m.ObserveRun(metrics.Run{Report: rep2, End: end.Add(time.Hour), Duration: time.Minute}); res != metrics.ResultOK {
		t.Fatalf("result %s", res)
	}
	want2 := `
# HELP groupsync_skipped Groups, users and members the last planned run skipped, by kind and reason.
# TYPE groupsync_skipped gauge
groupsync_skipped{kind="user",reason="disabled"} 1
# HELP groupsync_tuples_written_total Tuple changes written to OpenFGA, by operation.
# TYPE groupsync_tuples_written_total counter
groupsync_tuples_written_total{operation="add"} 9
groupsync_tuples_written_total{operation="delete"} 2
# HELP groupsync_last_success_timestamp_seconds When the last successful run ended, in Unix seconds; 0 before the first.
# TYPE groupsync_last_success_timestamp_seconds gauge
groupsync_last_success_timestamp_seconds 1.767326645e+09
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want2), "groupsync_skipped", "groupsync_tuples_written_total",
		"groupsync_last_success_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.Registry(), "groupsync_withheld"); n != 0 {
		t.Fatalf("%d withheld series after a run that withheld nothing", n)
	}
	m.ObserveSource(metrics.SourceStats{Retries: 1, Waited: time.Second})
	if got := m.SourceTotals(); got != (metrics.SourceStats{Requests: 12, BatchItems: 40, Retries: 4, Throttled: 2, Waited: 2500 * time.Millisecond}) {
		t.Fatalf("source totals %+v", got)
	}
	if n := testutil.CollectAndCount(m.Registry(), "groupsync_run_duration_seconds"); n != 1 {
		t.Fatalf("duration histogram: %d series", n)
	}
}

func TestGuardTrip(t *testing.T) {
	m := metrics.New()
	err := fmt.Errorf("apply: %w", &gsync.GuardError{Trip: &gsync.GuardTrip{Guard: gsync.GuardMaxDeletes}})
	rep := report(nil, nil, &gsync.ApplyResult{})
	if res := m.ObserveRun(metrics.Run{Report: rep, Err: err, End: time.Now(), Duration: time.Second}); res != metrics.ResultGuard {
		t.Fatalf("result %s", res)
	}
	// Even before the plan: a run that failed early counts, and leaves the
	// gauges of the last plan alone.
	m.ObserveRun(metrics.Run{Err: errors.New("read source: 503"), End: time.Now(), Duration: time.Second})
	want := `
# HELP groupsync_guard_trips_total Runs stopped by a guard, by guard (max_deletes, max_delete_percent, empty_source).
# TYPE groupsync_guard_trips_total counter
groupsync_guard_trips_total{guard="max_deletes"} 1
# HELP groupsync_runs_total Runs by result: ok, error, guard (a guard stopped the run), busy (another run held the lease).
# TYPE groupsync_runs_total counter
groupsync_runs_total{result="busy"} 0
groupsync_runs_total{result="error"} 1
groupsync_runs_total{result="guard"} 1
groupsync_runs_total{result="ok"} 0
# HELP groupsync_source_groups Groups the source returned in the last planned run.
# TYPE groupsync_source_groups gauge
groupsync_source_groups 7
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "groupsync_guard_trips_total", "groupsync_runs_total", "groupsync_source_groups"); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonSeries(t *testing.T) {
	m := metrics.New()
	m.Trigger("schedule", true)
	m.Trigger("schedule", false)
	m.Trigger("http", true)
	m.SetRunning(true)
	m.SetNextRun(time.Unix(1700000000, 0))
	m.ConfigLoaded(false, nil, time.Unix(1600000000, 0))
	m.ConfigLoaded(true, errors.New("daemon.schedule: bad"), time.Unix(1600000100, 0))
	m.SetBuildInfo("v1.2.3")
	want := `
# HELP groupsync_run_triggers_total Run triggers by trigger (start, schedule, http, event: queued events) and outcome (started; skipped while a run was in progress or the daemon stopping).
# TYPE groupsync_run_triggers_total counter
groupsync_run_triggers_total{outcome="skipped",trigger="schedule"} 1
groupsync_run_triggers_total{outcome="started",trigger="http"} 1
groupsync_run_triggers_total{outcome="started",trigger="schedule"} 1
# HELP groupsync_run_in_progress 1 while a run is in progress.
# TYPE groupsync_run_in_progress gauge
groupsync_run_in_progress 1
# HELP groupsync_next_run_timestamp_seconds When the next scheduled run starts (jitter included), in Unix seconds.
# TYPE groupsync_next_run_timestamp_seconds gauge
groupsync_next_run_timestamp_seconds 1.7e+09
# HELP groupsync_config_reloads_total Config reloads (SIGHUP) by result (ok, error).
# TYPE groupsync_config_reloads_total counter
groupsync_config_reloads_total{result="error"} 1
# HELP groupsync_config_last_reload_successful 1 when the last config reload succeeded (or none was asked for), 0 while the daemon runs on an older config.
# TYPE groupsync_config_last_reload_successful gauge
groupsync_config_last_reload_successful 0
# HELP groupsync_config_last_reload_success_timestamp_seconds When the config in use was loaded, in Unix seconds.
# TYPE groupsync_config_last_reload_success_timestamp_seconds gauge
groupsync_config_last_reload_success_timestamp_seconds 1.6e+09
# HELP groupsync_build_info Always 1; the version label is groupsync's.
# TYPE groupsync_build_info gauge
groupsync_build_info{version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "groupsync_run_triggers_total", "groupsync_run_in_progress",
		"groupsync_next_run_timestamp_seconds", "groupsync_config_reloads_total", "groupsync_config_last_reload_successful",
		"groupsync_config_last_reload_success_timestamp_seconds", "groupsync_build_info"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(m.Registry()); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	// A port nothing listens on: the request fails without a response.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	m := metrics.New()
	client := &http.Client{Transport: m.Transport(metrics.TargetSource, nil)}
	sink := &http.Client{Transport: m.Transport(metrics.TargetSink, http.DefaultTransport)}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { get(t, client, srv.URL+"/ok") })
	}
	wg.Wait()
	get(t, client, srv.URL+"/busy")
	if _, err := client.Get(dead); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	resp, err := sink.Post(srv.URL+"/write", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	want := `
# HELP groupsync_http_requests_total HTTP requests sent, retries included, by target (source, sink), method and status code ("error" when no response came).
# TYPE groupsync_http_requests_total counter
groupsync_http_requests_total{code="200",method="GET",target="source"} 3
groupsync_http_requests_total{code="200",method="POST",target="sink"} 1
groupsync_http_requests_total{code="429",method="GET",target="source"} 1
groupsync_http_requests_total{code="error",method="GET",target="source"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "groupsync_http_requests_total"); err != nil {
		t.Fatal(err)
	}
	if m.Requests(metrics.TargetSource) != 5 || m.Requests(metrics.TargetSink) != 1 || m.Requests("other") != 0 {
		t.Fatalf("request counts %d %d", m.Requests(metrics.TargetSource), m.Requests(metrics.TargetSink))
	}
	if n := testutil.CollectAndCount(m.Registry(), "groupsync_http_request_duration_seconds"); n != 2 {
		t.Fatalf("duration series %d", n)
	}
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func TestHandlerServesRuntimeToo(t *testing.T) {
	m := metrics.New()
	m.ObserveRun(metrics.Run{Report: report(nil, nil, nil), End: time.Now(), Duration: time.Second})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, s := range []string{`groupsync_runs_total{result="ok"} 1`, "go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(body, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
}

// TestPush plays the Pushgateway's side of its API: PUT
// /metrics/job/<job>{/<label>/<value>} with the exposition format.
func TestPush(t *testing.T) {
	var (
		mu       sync.Mutex
		method   string
		path     string
		user     string
		pass     string
		families []string
		runsOK   float64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		method, path = r.Method, r.URL.Path
		user, pass, _ = r.BasicAuth()
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				break
			}
			families = append(families, mf.GetName())
			if mf.GetName() == "groupsync_runs_total" {
				for _, mt := range mf.Metric {
					for _, l := range mt.Label {
						if l.GetName() == "result" && l.GetValue() == "ok" {
							runsOK = mt.Counter.GetValue()
						}
					}
				}
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	m := metrics.New()
	m.ObserveRun(metrics.Run{Report: report(nil, nil, &gsync.ApplyResult{Added: 9}), End: time.Now(), Duration: time.Second})
	u := strings.Replace(srv.URL, "http://", "http://pusher:s3cret@", 1)
	if err := metrics.Push(context.Background(), u, "groupsync", m.Registry(), map[string]string{"instance": "entra"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if method != http.MethodPut || path != "/metrics/job/groupsync/instance/entra" || user != "pusher" || pass != "s3cret" {
		t.Fatalf("%s %s as %s", method, path, user)
	}
	if runsOK != 1 || !contains(families, "groupsync_tuples_written_total") || contains(families, "go_goroutines") {
		t.Fatalf("pushed %v (runs ok %v)", families, runsOK)
	}

	// An error names the setting and never the password.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "nope", http.StatusBadRequest) })
	err := metrics.Push(context.Background(), u, "groupsync", m.Registry(), nil)
	if err == nil || !strings.Contains(err.Error(), "daemon.pushgateway.url") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("push error: %v", err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Every groupsync metric is documented in docs/kubernetes.md, and every
// metric the docs and the Grafana dashboard query exists.
func TestDocsAndDashboardNameRealMetrics(t *testing.T) {
	m := metrics.New()
	// Give every vector a series, so that Gather lists every family.
	tuple := gsync.Tuple{User: "user:a", Relation: "member", Object: "group:x"}
	rep := report([]gsync.Skip{{Kind: "user", Reason: "disabled"}},
		[]gsync.Withheld{{Op: "delete", Tuple: tuple, Reason: "adds_failed"}}, &gsync.ApplyResult{})
	rep.TargetRead = &gsync.TargetRead{Mode: "incremental"}
	m.ObserveRun(metrics.Run{Report: rep, Err: &gsync.GuardError{Trip: &gsync.GuardTrip{Guard: "max_deletes"}}, End: time.Now()})
	m.SetQuarantine("max_deletes", "0123456789abcdef", time.Now())
	m.QuarantineApproval("applied")
	m.Trigger("schedule", true)
	m.ConfigLoaded(true, nil, time.Now())
	m.SetBuildInfo("dev")
	m.EventReceived("authentik")
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	get(t, &http.Client{Transport: m.Transport(metrics.TargetSink, nil)}, srv.URL)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	real := map[string]bool{}
	for _, f := range families {
		real[f.GetName()] = true
	}

	docs, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile("../deploy/grafana/groupsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(dashboard, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	name := regexp.MustCompile(`groupsync_[a-z_]+[a-z]`)
	for file, text := range map[string][]byte{"docs/kubernetes.md": docs, "deploy/grafana/groupsync.json": dashboard} {
		for _, n := range name.FindAllString(string(text), -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && real[b] {
					base = b
				}
			}
			if !real[base] {
				t.Errorf("%s names %s, which groupsync does not export", file, n)
			}
		}
	}
	for n := range real {
		if !strings.Contains(string(docs), "`"+n+"`") {
			t.Errorf("docs/kubernetes.md does not document %s", n)
		}
	}
	if len(real) < 25 {
		t.Fatalf("only %d families", len(real))
	}
}

// A targeted run (an event's) counts as a run, but the last-run times and
// the source and plan gauges stay the last full run's: a user's run that
// succeeds must not hide full runs that fail.
func TestObserveTargetedRun(t *testing.T) {
	m := metrics.New()
	end := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.ObserveRun(metrics.Run{Report: report(nil, nil, &gsync.ApplyResult{}), End: end, Duration: time.Minute})
	small := &gsync.Report{Command: "apply", Summary: gsync.Summary{SourceUsers: 1, ToAdd: 1}, Result: &gsync.ApplyResult{Added: 1}}
	m.ObserveRun(metrics.Run{Report: small, End: end.Add(time.Hour), Duration: time.Second, Targeted: true})
	m.EventReceived("authentik")
	m.EventsCoalesced(2)
	m.EventDropped()
	m.SetEventQueueDepth(3)
	m.ObserveEventLag(1500 * time.Millisecond)
	for name, want := range map[string]float64{
		"groupsync_runs_total":                     2,
		"groupsync_tuples_written_total":           1,
		"groupsync_last_success_timestamp_seconds": float64(end.Unix()),
		"groupsync_last_run_duration_seconds":      60,
		"groupsync_source_users":                   8,
		"groupsync_events_received_total":          1,
		"groupsync_events_coalesced_total":         2,
		"groupsync_events_dropped_total":           1,
		"groupsync_event_queue_depth":              3,
	} {
		if got := sum(t, m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func sum(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	return m.Total(name)
}

// Package metrics is groupsync's Prometheus metrics: what each run found and
// wrote, the HTTP requests it sent to the source and to OpenFGA, and the
// daemon's own state (schedule, triggers, config reloads).
//
// A Metrics holds its series in a registry of its own, so that one-shot
// runs push exactly groupsync's series to a Pushgateway (Push) and the
// daemon serves them, with the Go runtime's, on /metrics (Handler).
//
// Counters (…_total) add up over the daemon's life; gauges of the source
// and the plan (groups, users, skipped, withheld) describe the last run
// that got as far as a plan. docs/kubernetes.md lists queries and alerts.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"

	gsync "github.com/groupsync/groupsync/sync"
)

const namespace = "groupsync"

// Result is how a run ended, the "result" label of groupsync_runs_total.
type Result string

const (
	ResultOK    Result = "ok"    // planned, and applied with nothing failed
	ResultError Result = "error" // any error (exit code 1)
	ResultGuard Result = "guard" // a deletion or empty-source guard stopped the run (exit code 3)
	ResultBusy  Result = "busy"  // another run of the instance held the lease (exit code 4)
)

// ResultOf classifies a run's error the way the exit codes do.
func ResultOf(err error) Result {
	var guard *gsync.GuardError
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &guard):
		return ResultGuard
	case errors.Is(err, gsync.ErrLeaseBusy):
		return ResultBusy
	}
	return ResultError
}

// Operations, the "operation" label of the tuple counters.
const (
	OpAdd    = "add"
	OpDelete = "delete"
)

// Targets of the HTTP transport, the "target" label.
const (
	TargetSource = "source" // the identity provider (Graph ...)
	TargetSink   = "sink"   // OpenFGA
)

// Metrics is one process's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	runtime *prometheus.Registry

	runs           *prometheus.CounterVec
	runDuration    prometheus.Histogram
	lastDuration   prometheus.Gauge
	lastRun        prometheus.Gauge
	lastSuccess    prometheus.Gauge
	guardTrips     *prometheus.CounterVec
	planned        *prometheus.CounterVec
	written        *prometheus.CounterVec
	failed         *prometheus.CounterVec
	sourceGroups   prometheus.Gauge
	sourceUsers    prometheus.Gauge
	managedGroups  prometheus.Gauge
	desiredTuples  prometheus.Gauge
	existingTuples prometheus.Gauge
	skipped        *prometheus.GaugeVec
	withheld       *prometheus.GaugeVec

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	batchItems   prometheus.Counter
	sourceReqs   prometheus.Counter
	retries      prometheus.Counter
	throttled    prometheus.Counter
	retryWait    prometheus.Counter

	triggers      *prometheus.CounterVec
	inProgress    prometheus.Gauge
	nextRun       prometheus.Gauge
	reloads       *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	reloadOKTime  prometheus.Gauge
	buildInfo     *prometheus.GaugeVec
	eventsIn      *prometheus.CounterVec
	coalesced     prometheus.Counter
	dropped       prometheus.Counter
	queueDepth    prometheus.Gauge
	eventLag      prometheus.Histogram
	targetReads   *prometheus.CounterVec
	targetGroups  *prometheus.GaugeVec
	quarantined   prometheus.Gauge
	quarantine    *prometheus.GaugeVec
	quarantinedAt prometheus.Gauge
	approvals     *prometheus.CounterVec
	observeMu     sync.Mutex // one run's gauges are replaced together
	requestCounts sync.Map   // target → *atomic.Int64
	sourceMu      sync.Mutex
	source        SourceStats
}

// New creates the metrics in a registry of their own.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), runtime: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.runs = f.counterVec("runs_total", "Runs by result: ok, error, guard (a guard stopped the run), busy (another run held the lease).", "result")
	m.runDuration = f.histogram("run_duration_seconds", "Duration of runs, from reading the source to the last write.",
		[]float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200})
	m.lastDuration = f.gauge("last_run_duration_seconds", "Duration of the last run.")
	m.lastRun = f.gauge("last_run_timestamp_seconds", "When the last run ended, in Unix seconds.")
	m.lastSuccess = f.gauge("last_success_timestamp_seconds", "When the last successful run ended, in Unix seconds; 0 before the first.")
	m.guardTrips = f.counterVec("guard_trips_total", "Runs stopped by a guard, by guard (max_deletes, max_delete_percent, empty_source).", "guard")
	m.planned = f.counterVec("tuples_planned_total", "Tuple changes planned, by operation (add, delete).", "operation")
	m.written = f.counterVec("tuples_written_total", "Tuple changes written to OpenFGA, by operation.", "operation")
	m.failed = f.counterVec("tuples_failed_total", "Tuple changes that failed to write, by operation.", "operation")
	m.sourceGroups = f.gauge("source_groups", "Groups the source returned in the last planned run.")
	m.sourceUsers = f.gauge("source_users", "Users the source returned in the last planned run.")
	m.managedGroups = f.gauge("managed_groups", "Groups mapped to OpenFGA objects in the last planned run.")
	m.desiredTuples = f.gauge("desired_tuples", "Tuples that should exist, in the last planned run.")
	m.existingTuples = f.gauge("existing_tuples", "Tuples read from OpenFGA in the managed scope, in the last planned run.")
	m.skipped = f.gaugeVec("skipped", "Groups, users and members the last planned run skipped, by kind and reason.", "kind", "reason")
	m.withheld = f.gaugeVec("withheld", "Changes the last planned run did not make, by operation and reason.", "operation", "reason")

	m.httpRequests = f.counterVec("http_requests_total", "HTTP requests sent, retries included, by target (source, sink), method and status code (\"error\" when no response came).", "target", "method", "code")
	m.httpDuration = f.histogramVec("http_request_duration_seconds", "Time to the response headers of HTTP requests, by target.",
		[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}, "target")
	m.batchItems = f.counter("source_batch_items_total", "Requests the source sent inside $batch requests.")
	m.sourceReqs = f.counter("source_requests_total", "Requests the source sent, retries included, whatever the protocol (HTTP requests, LDAP searches); HTTP ones also count in http_requests_total.")
	m.retries = f.counter("source_retries_total", "Source requests and batch items retried (throttling, 5xx, dropped connections).")
	m.throttled = f.counter("source_throttled_total", "Source answers 429 Too Many Requests (HTTP or batch item).")
	m.retryWait = f.counter("source_retry_wait_seconds_total", "Time the source spent waiting to retry (Retry-After and backoff).")

	m.triggers = f.counterVec("run_triggers_total", "Run triggers by trigger (start, schedule, http, event: queued events) and outcome (started; skipped while a run was in progress or the daemon stopping).", "trigger", "outcome")
	m.inProgress = f.gauge("run_in_progress", "1 while a run is in progress.")
	m.nextRun = f.gauge("next_run_timestamp_seconds", "When the next scheduled run starts (jitter included), in Unix seconds.")
	m.reloads = f.counterVec("config_reloads_total", "Config reloads (SIGHUP) by result (ok, error).", "result")
	m.reloadOK = f.gauge("config_last_reload_successful", "1 when the last config reload succeeded (or none was asked for), 0 while the daemon runs on an older config.")
	m.reloadOKTime = f.gauge("config_last_reload_success_timestamp_seconds", "When the config in use was loaded, in Unix seconds.")
	m.buildInfo = f.gaugeVec("build_info", "Always 1; the version label is groupsync's.", "version")
	m.eventsIn = f.counterVec("events_received_total", "Events (webhooks, POST /sync/...) the daemon's queue was offered, by origin (authentik, generic, graph), coalesced and dropped ones included.", "origin")
	m.coalesced = f.counter("events_coalesced_total", "Events that did not need a run of their own: the same user or group (or a delta request) was already queued, or a full run started while they waited.")
	m.dropped = f.counter("events_dropped_total", "Events refused because the queue was full (the endpoint answered 503; the scheduled run repairs them).")
	m.queueDepth = f.gauge("event_queue_depth", "Users, groups and delta requests waiting for a run.")
	m.eventLag = f.histogram("event_lag_seconds", "From an event's arrival to the end of the successful run that applied it, per queued user, group or delta request.",
		[]float64{.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600})

	m.targetReads = f.counterVec("target_reads_total", "Runs by how they read OpenFGA with sync.incremental on: full (every managed group) or incremental (only the groups that changed on either side).", "mode")
	m.targetGroups = f.gaugeVec("target_groups", "Managed groups the last run read from OpenFGA (kind read) and those it knew unchanged without reading (kind known).", "kind")

	m.quarantined = f.gauge("quarantined", "1 while a plan a guard stopped awaits approval (GET /status, groupsync approve), else 0.")
	m.quarantine = f.gaugeVec("quarantine_info", "1 for the quarantined plan, by the guard it tripped and its plan id; no series when nothing is quarantined.", "guard", "plan_id")
	m.quarantinedAt = f.gauge("quarantine_since_timestamp_seconds", "When the quarantined plan first tripped its guard, in Unix seconds; 0 when nothing is quarantined.")
	m.approvals = f.counterVec("quarantine_approvals_total", "Approvals of a quarantined plan by result: applied, stale (nothing written), error.", "result")

	for _, op := range []string{OpAdd, OpDelete} {
		m.planned.WithLabelValues(op)
		m.written.WithLabelValues(op)
		m.failed.WithLabelValues(op)
	}
	for _, r := range []Result{ResultOK, ResultError, ResultGuard, ResultBusy} {
		m.runs.WithLabelValues(string(r))
	}
	m.reloadOK.Set(1)
	m.runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Registry holds groupsync's series only (what Push sends).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves groupsync's series and the Go runtime's and process's.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{m.reg, m.runtime}, promhttp.HandlerOpts{})
}

// SetBuildInfo sets groupsync_build_info{version}.
func (m *Metrics) SetBuildInfo(version string) { m.buildInfo.WithLabelValues(version).Set(1) }

// SourceStats is what a source counted during one run (for Graph, its
// msgraph.Stats).
type SourceStats struct {
	Requests   int64 // HTTP requests or LDAP operations
	BatchItems int64
	Retries    int64
	Throttled  int64
	Waited     time.Duration
}

// ObserveSource adds what a run's source counted (call it once a run, with
// the run's own counts).
func (m *Metrics) ObserveSource(s SourceStats) {
	m.sourceReqs.Add(float64(s.Requests))
	m.batchItems.Add(float64(s.BatchItems))
	m.retries.Add(float64(s.Retries))
	m.throttled.Add(float64(s.Throttled))
	m.retryWait.Add(s.Waited.Seconds())
	m.sourceMu.Lock()
	m.source.Requests += s.Requests
	m.source.BatchItems += s.BatchItems
	m.source.Retries += s.Retries
	m.source.Throttled += s.Throttled
	m.source.Waited += s.Waited
	m.sourceMu.Unlock()
}

// SourceTotals is the sum of every ObserveSource so far (for a run's
// summary: take the difference).
func (m *Metrics) SourceTotals() SourceStats {
	m.sourceMu.Lock()
	defer m.sourceMu.Unlock()
	return m.source
}

// Run is one run's outcome.
type Run struct {
	Report   *gsync.Report // nil when the run failed before it had a plan
	Err      error
	End      time.Time
	Duration time.Duration
	// Targeted is a run of a slice (some users, some groups: an event):
	// it counts in the runs, guard trips and tuple counters, but leaves
	// the duration histogram, the last-run and last-success times and the
	// source and plan gauges to full runs, which those describe (a
	// succeeding user's run must not hide failing full runs from alerts).
	Targeted bool
}

// ObserveRun records a finished run and returns its result.
func (m *Metrics) ObserveRun(r Run) Result {
	res := ResultOf(r.Err)
	m.runs.WithLabelValues(string(res)).Inc()
	if !r.Targeted {
		m.runDuration.Observe(r.Duration.Seconds())
		m.lastDuration.Set(r.Duration.Seconds())
		m.lastRun.Set(unix(r.End))
		if res == ResultOK {
			m.lastSuccess.Set(unix(r.End))
		}
	}
	var guard *gsync.GuardError
	if errors.As(r.Err, &guard) && guard.Trip != nil {
		m.guardTrips.WithLabelValues(guard.Trip.Guard).Inc()
	}
	rep := r.Report
	if rep == nil {
		return res
	}
	s := rep.Summary
	m.planned.WithLabelValues(OpAdd).Add(float64(s.ToAdd))
	m.planned.WithLabelValues(OpDelete).Add(float64(s.ToDelete))
	if a := rep.Result; a != nil {
		m.written.WithLabelValues(OpAdd).Add(float64(a.Added))
		m.written.WithLabelValues(OpDelete).Add(float64(a.Deleted))
		for _, f := range a.Failed {
			m.failed.WithLabelValues(f.Op).Inc()
		}
	}
	if r.Targeted {
		return res
	}

	m.observeMu.Lock()
	defer m.observeMu.Unlock()
	if tr := rep.TargetRead; tr != nil {
		m.targetReads.WithLabelValues(tr.Mode).Inc()
		m.targetGroups.WithLabelValues("read").Set(float64(tr.GroupsRead))
		m.targetGroups.WithLabelValues("known").Set(float64(tr.GroupsKnown))
	}
	m.sourceGroups.Set(float64(s.SourceGroups))
	m.sourceUsers.Set(float64(s.SourceUsers))
	m.managedGroups.Set(float64(s.ManagedGroups))
	m.desiredTuples.Set(float64(s.DesiredTuples))
	m.existingTuples.Set(float64(s.ExistingTuples))
	// Reasons come and go between runs: a series for a reason the last run
	// did not see would lie.
	m.skipped.Reset()
	for _, sk := range rep.Skipped {
		m.skipped.WithLabelValues(sk.Kind, sk.Reason).Inc()
	}
	m.withheld.Reset()
	for _, w := range rep.Withheld {
		m.withheld.WithLabelValues(w.Op, w.Reason).Inc()
	}
	return res
}

// SetQuarantine shows the plan quarantined since the given time, stopped
// by guard; an empty planID shows that nothing is quarantined.
func (m *Metrics) SetQuarantine(guard, planID string, since time.Time) {
	m.quarantine.Reset()
	if planID == "" {
		m.quarantined.Set(0)
		m.quarantinedAt.Set(0)
		return
	}
	m.quarantined.Set(1)
	m.quarantine.WithLabelValues(guard, planID).Set(1)
	m.quarantinedAt.Set(unix(since))
}

// QuarantineApproval counts an approval by result (applied, stale, error).
func (m *Metrics) QuarantineApproval(result string) { m.approvals.WithLabelValues(result).Inc() }

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Trigger counts a request for a run: trigger is start, schedule, http or
// event; started is false when it was skipped (a run was in progress).
func (m *Metrics) Trigger(trigger string, started bool) {
	outcome := "started"
	if !started {
		outcome = "skipped"
	}
	m.triggers.WithLabelValues(trigger, outcome).Inc()
}

// EventReceived counts an event offered to the queue, by origin.
func (m *Metrics) EventReceived(origin string) { m.eventsIn.WithLabelValues(origin).Inc() }

// EventsCoalesced counts n events that joined work already queued or
// running.
func (m *Metrics) EventsCoalesced(n int) { m.coalesced.Add(float64(n)) }

// EventDropped counts an event refused by a full queue.
func (m *Metrics) EventDropped() { m.dropped.Inc() }

// SetEventQueueDepth sets groupsync_event_queue_depth.
func (m *Metrics) SetEventQueueDepth(n int) { m.queueDepth.Set(float64(n)) }

// ObserveEventLag records how long an applied event waited, from its
// arrival to the end of its run.
func (m *Metrics) ObserveEventLag(d time.Duration) { m.eventLag.Observe(d.Seconds()) }

// SetRunning sets groupsync_run_in_progress.
func (m *Metrics) SetRunning(running bool) {
	v := 0.0
	if running {
		v = 1
	}
	m.inProgress.Set(v)
}

// SetNextRun sets when the next scheduled run starts.
func (m *Metrics) SetNextRun(t time.Time) { m.nextRun.Set(unix(t)) }

// ConfigLoaded records a config load at t: the first, or a reload (err is
// the reason a reload was refused).
func (m *Metrics) ConfigLoaded(reload bool, err error, t time.Time) {
	if reload {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.reloads.WithLabelValues(result).Inc()
	}
	if err != nil {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadOKTime.Set(unix(t))
}

// Requests returns the HTTP requests sent to target so far through
// Transport (for a run's summary: take the difference).
func (m *Metrics) Requests(target string) int64 {
	if c, ok := m.requestCounts.Load(target); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// Transport counts and times each HTTP request sent through base to target
// (TargetSource, TargetSink), by method and status code. nil base is
// http.DefaultTransport.
func (m *Metrics) Transport(target string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	c, _ := m.requestCounts.LoadOrStore(target, new(atomic.Int64))
	return &transport{m: m, target: target, base: base, count: c.(*atomic.Int64),
		duration: m.httpDuration.WithLabelValues(target)}
}

type transport struct {
	m        *Metrics
	target   string
	base     http.RoundTripper
	count    *atomic.Int64
	duration prometheus.Observer
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	t.duration.Observe(time.Since(start).Seconds())
	t.count.Add(1)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.m.httpRequests.WithLabelValues(t.target, req.Method, code).Inc()
	return resp, err
}

// Push replaces the metrics of the group {job, grouping...} on the
// Pushgateway at url with g's (a one-shot run's Registry), so that series
// of an earlier run, such as a skip reason that went away, do not linger.
//
// Credentials in url (https://user:password@host) are sent as basic auth
// and never appear in an error.
func Push(ctx context.Context, rawURL, job string, g prometheus.Gatherer, grouping map[string]string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("push metrics: daemon.pushgateway.url is not a URL")
	}
	user := u.User
	u.User = nil
	p := push.New(u.String(), job).Gatherer(g)
	if user != nil {
		pass, _ := user.Password()
		p = p.BasicAuth(user.Username(), pass)
	}
	for k, v := range grouping {
		p = p.Grouping(k, v)
	}
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("push metrics to the Pushgateway at %s (daemon.pushgateway.url): %w", u.Redacted(), err)
	}
	return nil
}

// Total is the sum of every series of the metric called name (groupsync_
// prefix included): counter and gauge values, histogram sample counts; 0
// when there is none. For tests and the daemon's own summaries, not for
// scraping.
func (m *Metrics) Total(name string) float64 {
	mf, err := m.reg.Gather()
	if err != nil {
		return 0
	}
	var s float64
	for _, f := range mf {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.Metric {
			switch {
			case mt.Counter != nil:
				s += mt.Counter.GetValue()
			case mt.Gauge != nil:
				s += mt.Gauge.GetValue()
			case mt.Histogram != nil:
				s += float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return s
}

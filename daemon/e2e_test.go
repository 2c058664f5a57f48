package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/metrics"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/msgraph"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// These tests run the daemon for real: a Graph tenant served by graphtest,
// a real OpenFGA (fgatest), HTTP on a loopback port, and a RunFunc that
// builds the engine the way cmd/groupsync does, with the daemon's
// transports under the source and the sink.

// msgraph-sdk-go-core v1.4.0 creates its error-mapping registry lazily
// with an unsynchronized check (error_mappings_registry.go), which the race
// detector catches when the first $batch requests go out in parallel. Make
// it exist before any test does that.
func init() { msgraphcore.GetErrorFactoryFromRegistry("") }

// engineRun builds the source, the sink and the engine from cfg for each
// run, their HTTP counted by m and drained on shutdown.
func engineRun(m *metrics.Metrics) daemon.RunFunc {
	return func(ctx context.Context, cfg *config.Config) (*gsync.Report, error) {
		src, err := msgraph.New(cfg.Source.MSGraph, msgraph.WithMapping(cfg.Mapping),
			msgraph.WithTransport(m.Transport(metrics.TargetSource, daemon.DrainTransport(nil))))
		if err != nil {
			return nil, err
		}
		sink, err := openfga.New(ctx, cfg.OpenFGA,
			openfga.WithHTTPClient(&http.Client{Transport: m.Transport(metrics.TargetSink, daemon.DrainTransport(nil))}))
		if err != nil {
			return nil, err
		}
		// These tests are about the daemon, not ownership: the whole scope
		// is the run's, with no lease and no guards.
		c := *cfg
		c.Sync = config.Sync{Ownership: config.Ownership{Mode: config.OwnershipAuthoritative}}
		engine, err := gsync.New(&c, src, openfga.NewTarget(sink), nil)
		if err != nil {
			return nil, err
		}
		rep, err := engine.Run(ctx, true)
		read := src.LastRead()
		m.ObserveSource(metrics.SourceStats{BatchItems: read.BatchItems, Retries: read.Retries, Throttled: read.Throttled, Waited: read.Waited})
		return rep, err
	}
}

type live struct {
	t     *testing.T
	d     *daemon.Daemon
	m     *metrics.Metrics
	url   string
	stop  context.CancelFunc
	done  chan error
	fga   *fgatest.Server
	store string
	graph *graphtest.Server
}

func startLive(t *testing.T, tenant *graphtest.Tenant, daemonYAML, openfgaExtra string, fgaOpts ...fgatest.Option) *live {
	t.Helper()
	graph := graphtest.New(t, tenant)
	srv := fgatest.New(t, fgaOpts...)
	storeID, _ := srv.CreateStore(t, "daemon", fgatest.GroupModel)
	yaml := fmt.Sprintf(`source:
  type: msgraph
  msgraph: {auth: token, graph_endpoint: %q, max_retry_wait: 10s}
openfga: {api_url: %q, store_id: %q%s}
mapping: {group: {key: id}, nesting: userset}
daemon: %s
`, graph.URL, srv.URL, storeID, openfgaExtra, daemonYAML)
	env := map[string]string{"GROUPSYNC_SOURCE_MSGRAPH_TOKEN": graph.Token(), "GROUPSYNC_DAEMON_TRIGGER_TOKEN": token}
	load := func() (*config.Config, error) {
		return config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}
	m := metrics.New()
	d, err := daemon.New(daemon.Options{Load: load, Run: engineRun(m), Metrics: m, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &live{t: t, d: d, m: m, url: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1),
		fga: srv, store: storeID, graph: graph}
	go func() { l.done <- d.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	return l
}

func (l *live) get(path string) (int, string) {
	l.t.Helper()
	resp, err := http.Get(l.url + path)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz the way a kubelet does, only faster.
func (l *live) waitReady() {
	l.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := l.get("/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("not ready after 2m: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape reads /metrics as Prometheus does.
func (l *live) scrape() map[string]*dto.MetricFamily {
	l.t.Helper()
	code, body := l.get("/metrics")
	if code != http.StatusOK {
		l.t.Fatalf("/metrics %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		l.t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// value returns the sample of family name whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
	total, found := 0.0, false
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			ok := false
			for _, lp := range m.Label {
				ok = ok || (lp.GetName() == want[i] && lp.GetValue() == want[i+1])
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return total
}

// The acceptance test: a daemon against graphtest and a real
// OpenFGA serves /metrics that show a completed run.
func TestDaemonAgainstGraphAndOpenFGA(t *testing.T) {
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 5, Users: 300, Groups: 40, MaxDepth: 2, MembersPerGroup: 8,
		DisabledFraction: 0.05, Devices: 10})
	l := startLive(t, tenant, `{schedule: "@hourly", run_at_start: true, trigger: {enabled: true}}`, "")
	l.graph.FailNextWith(1, graphtest.Fault{Kind: graphtest.FaultStatus, Status: http.StatusTooManyRequests, RetryAfter: "0.05"})
	l.waitReady()

	stored := len(l.fga.Tuples(t, l.store))
	f := l.scrape()
	for _, c := range []struct {
		name   string
		labels []string
		check  func(float64) bool
		want   string
	}{
		{"groupsync_runs_total", []string{"result", "ok"}, eq(1), "1"},
		{"groupsync_runs_total", []string{"result", "error"}, eq(0), "0"},
		{"groupsync_tuples_planned_total", []string{"operation", "add"}, eq(float64(stored)), fmt.Sprint(stored)},
		{"groupsync_tuples_written_total", []string{"operation", "add"}, eq(float64(stored)), fmt.Sprint(stored)},
		{"groupsync_tuples_failed_total", []string{"operation", "add"}, eq(0), "0"},
		{"groupsync_source_groups", nil, eq(40), "40"},
		{"groupsync_source_users", nil, gt(250), "> 250"},
		{"groupsync_skipped", []string{"kind", "user", "reason", "disabled"}, gt(0), "> 0"},
		{"groupsync_run_duration_seconds", nil, eq(1), "1 observation"},
		{"groupsync_last_success_timestamp_seconds", nil, gt(float64(time.Now().Add(-time.Minute).Unix())), "within the minute"},
		{"groupsync_http_requests_total", []string{"target", "source", "method", "GET", "code", "200"}, gt(0), "> 0"},
		{"groupsync_http_requests_total", []string{"target", "source", "method", "POST", "code", "200"}, gt(0), "> 0 ($batch)"},
		{"groupsync_http_requests_total", []string{"target", "source", "code", "429"}, eq(1), "1"},
		{"groupsync_http_requests_total", []string{"target", "sink", "method", "POST", "code", "200"}, gt(0), "> 0 (writes, reads)"},
		{"groupsync_http_request_duration_seconds", []string{"target", "sink"}, gt(0), "> 0"},
		{"groupsync_source_throttled_total", nil, eq(1), "1"},
		{"groupsync_source_retries_total", nil, eq(1), "1"},
		{"groupsync_source_retry_wait_seconds_total", nil, eq(0.05), "0.05"},
		{"groupsync_source_batch_items_total", nil, gt(0), "> 0"},
		{"groupsync_run_triggers_total", []string{"trigger", "start", "outcome", "started"}, eq(1), "1"},
		{"groupsync_run_in_progress", nil, eq(0), "0"},
		{"groupsync_next_run_timestamp_seconds", nil, gt(float64(time.Now().Unix())), "in the future"},
		{"go_goroutines", nil, gt(0), "> 0"},
	} {
		if got := value(f, c.name, c.labels...); !c.check(got) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, got, c.want)
		}
	}
	if stored == 0 {
		t.Fatal("nothing was written")
	}

	// A run on demand: nothing left to do.
	req, _ := http.NewRequest(http.MethodPost, l.url+"/run?wait=true", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ Outcome daemon.Outcome }
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || answer.Outcome.Summary.ToAdd != 0 || answer.Outcome.Summary.ExistingTuples != stored {
		t.Fatalf("POST /run?wait=true: %d %+v %v", resp.StatusCode, answer.Outcome, err)
	}
	f = l.scrape()
	if value(f, "groupsync_runs_total", "result", "ok") != 2 || value(f, "groupsync_tuples_written_total", "operation", "add") != float64(stored) {
		t.Fatal("the second run is not in the metrics")
	}

	l.stop()
	select {
	case err := <-l.done:
		l.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle daemon did not stop within 10s")
	}
	if _, err := http.Get(l.url + "/healthz"); err == nil {
		t.Fatal("still serving after Run returned")
	}
}

func eq(want float64) func(float64) bool {
	return func(v float64) bool { return v > want-1e-9 && v < want+1e-9 }
}

func gt(min float64) func(float64) bool { return func(v float64) bool { return v > min } }

// holdWrite holds the nth Write request (from 1) until released, and
// reports when it arrived.
type holdWrite struct {
	n       int
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHold(n int) *holdWrite {
	return &holdWrite{n: n, arrived: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdWrite) fault(r fgatest.Request) *fgatest.Fault {
	if r.Endpoint == fgatest.Write && r.N == h.n {
		h.once.Do(func() { close(h.arrived) })
		<-h.release
	}
	return nil
}

func smallTenant() *graphtest.Tenant {
	return graphtest.Generate(graphtest.GenOptions{Seed: 6, Users: 200, Groups: 40, MaxDepth: 1, MembersPerGroup: 10})
}

// SIGTERM mid-apply with real components: the write chunk in flight is
// written, no later chunk is sent, and the daemon exits.
func TestShutdownMidApplyFinishesTheChunkInFlight(t *testing.T) {
	hold := newHold(2)
	l := startLive(t, smallTenant(), `{schedule: "@hourly", run_at_start: true, shutdown_grace: 30s}`,
		", max_tuples_per_write: 10, max_parallel_writes: 1", fgatest.WithFault(hold.fault))
	select {
	case <-hold.arrived:
	case <-time.After(2 * time.Minute):
		t.Fatal("the second write never came")
	}
	l.stop() // as SIGTERM does: the run's context ends now
	close(hold.release)
	select {
	case err := <-l.done:
		l.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}

	writes := l.fga.Writes()
	if len(writes) != 2 || writes[0].Status != 200 || writes[1].Status != 200 {
		t.Fatalf("writes after the signal: %+v", writes)
	}
	if n := len(l.fga.Tuples(t, l.store)); n != 20 {
		t.Fatalf("%d tuples stored, want the two chunks of 10", n)
	}
	o := l.d.Last()
	if o == nil || o.Result != metrics.ResultError || o.Summary.ToAdd < 50 || o.Applied.Added != 20 || o.Applied.Failed != o.Summary.ToAdd-20 {
		t.Fatalf("outcome %+v", o)
	}
	// The chunk that finished after the signal counts as written.
	if n := value(gatherText(t, l.m), "groupsync_tuples_written_total", "operation", "add"); n != 20 {
		t.Fatalf("written %v", n)
	}
}

// Past shutdown_grace the chunk in flight is cancelled and the daemon
// exits anyway.
func TestShutdownMidApplyIsBoundedByTheGrace(t *testing.T) {
	hold := newHold(1)
	l := startLive(t, smallTenant(), `{schedule: "@hourly", run_at_start: true, shutdown_grace: 300ms}`,
		", max_tuples_per_write: 10, max_parallel_writes: 1", fgatest.WithFault(hold.fault))
	defer close(hold.release)
	select {
	case <-hold.arrived:
	case <-time.After(2 * time.Minute):
		t.Fatal("no write came")
	}
	begin := time.Now()
	l.stop()
	select {
	case err := <-l.done:
		l.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	if took := time.Since(begin); took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("stopped %s after the signal; the grace is 300ms", took)
	}
	if o := l.d.Last(); o == nil || o.Applied == nil || o.Applied.Added != 0 || o.Applied.Failed == 0 {
		t.Fatalf("outcome %+v", o)
	}
	if len(l.fga.Writes()) != 1 {
		t.Fatalf("%d writes; want only the one cut off", len(l.fga.Writes()))
	}
}

func gatherText(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range mfs {
		out[f.GetName()] = f
	}
	return out
}

// A listener that fails stops the daemon like a signal does, with the error.
func TestRunReturnsServeErrors(t *testing.T) {
	l := &loader{}
	l.set(parse(t, `{schedule: "@hourly", run_at_start: false}`), nil)
	d, err := daemon.New(daemon.Options{Load: l.load, Run: (&runs{}).run})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background(), ln) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "daemon.listen: ") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run went on without its listener")
	}
}

package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/metrics"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/file"
	gsync "github.com/groupsync/groupsync/sync"
)

// These tests run a daemon for real against a file tenant and a real
// OpenFGA (fgatest), with sync.guards.max_delete_percent at 30: the run
// that would delete 15 of 35 tuples is quarantined, and its plan is
// approved, or found stale, through the daemon's own endpoints.

// fileTenant writes a tenant: group "staff" with staff users, "eng" with
// 10 and "ops" with 5 (u01..).
func fileTenant(t *testing.T, path string, staff int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "  - {id: u%02d, upn: u%02d@example.com}\n", i, i)
	}
	members := func(n int) string {
		var ids []string
		for i := 1; i <= n; i++ {
			ids = append(ids, fmt.Sprintf("u%02d", i))
		}
		return "[" + strings.Join(ids, ", ") + "]"
	}
	fmt.Fprintf(&b, "groups:\n  - {id: g1, name: staff, members: %s}\n  - {id: g2, name: eng, members: %s}\n  - {id: g3, name: ops, members: %s}\n",
		members(staff), members(10), members(5))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fileEngine builds the engine cmd/groupsync builds for a file source.
func fileEngine(ctx context.Context, cfg *config.Config, m *metrics.Metrics) (*gsync.Engine, error) {
	sink, err := openfga.New(ctx, cfg.OpenFGA,
		openfga.WithHTTPClient(&http.Client{Transport: m.Transport(metrics.TargetSink, daemon.DrainTransport(nil))}))
	if err != nil {
		return nil, err
	}
	return gsync.New(cfg, file.New(cfg.Source.File.Path), openfga.NewTarget(sink), nil)
}

type quarantineDaemon struct {
	t      *testing.T
	d      *daemon.Daemon
	url    string
	fga    *fgatest.Server
	store  string
	tenant string
	logs   *observer.ObservedLogs
}

// startFileDaemon starts a daemon on a loopback port with the trigger, the
// event endpoints and the status page on, and no run until one is asked
// for.
func startFileDaemon(t *testing.T) *quarantineDaemon {
	t.Helper()
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "quarantine", fgatest.GroupModel)
	tenant := filepath.Join(t.TempDir(), "tenant.yaml")
	fileTenant(t, tenant, 20)
	yaml := fmt.Sprintf(`source: {type: file, file: {path: %q}}
openfga: {api_url: %q, store_id: %q}
mapping: {group: {key: name}}
sync:
  ownership: {mode: authoritative, instance: test-instance}
  lease: {enabled: false}
  guards: {max_deletes: 0, max_delete_percent: 30}
daemon:
  schedule: "@hourly"
  run_at_start: false
  jitter: 0s
  trigger: {enabled: true, token: %s}
  webhooks: {enabled: true, token: %s, coalesce: 0s}
  status: {enabled: true}
`, tenant, srv.URL, storeID, token, hookToken)
	load := func() (*config.Config, error) {
		return config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
	}
	m := metrics.New()
	core, logs := observer.New(zap.InfoLevel)
	d, err := daemon.New(daemon.Options{Load: load, Metrics: m, Log: zap.New(core), Progress: -1,
		Run: func(ctx context.Context, cfg *config.Config) (*gsync.Report, error) {
			e, err := fileEngine(ctx, cfg, m)
			if err != nil {
				return nil, err
			}
			return e.Run(ctx, true)
		},
		RunSlice: func(ctx context.Context, cfg *config.Config, s gsync.Slice) (*gsync.Report, error) {
			e, err := fileEngine(ctx, cfg, m)
			if err != nil {
				return nil, err
			}
			return e.RunSlice(ctx, s, true)
		},
		ApplySaved: func(ctx context.Context, cfg *config.Config, sp *gsync.SavedPlan) (*gsync.Report, error) {
			e, err := fileEngine(ctx, cfg, m)
			if err != nil {
				return nil, err
			}
			return e.ApplySaved(ctx, sp)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &quarantineDaemon{t: t, d: d, url: "http://" + ln.Addr().String(), fga: srv, store: storeID, tenant: tenant, logs: logs}
}

// do sends a request with the trigger token (auth "" sends none).
func (q *quarantineDaemon) do(method, path, auth, body string) (int, http.Header, string) {
	q.t.Helper()
	req, err := http.NewRequest(method, q.url+path, strings.NewReader(body))
	if err != nil {
		q.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		q.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// run runs once now and waits for it.
func (q *quarantineDaemon) run() {
	q.t.Helper()
	if code, _, body := q.do(http.MethodPost, "/run?wait=true", token, ""); code != http.StatusOK && code != http.StatusInternalServerError {
		q.t.Fatalf("POST /run: %d %s", code, body)
	}
}

func (q *quarantineDaemon) status() daemon.Status {
	q.t.Helper()
	code, _, body := q.do(http.MethodGet, "/status", "", "")
	if code != http.StatusOK {
		q.t.Fatalf("GET /status: %d %s", code, body)
	}
	var st daemon.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		q.t.Fatalf("GET /status is not the Status document: %v\n%s", err, body)
	}
	if st.FormatVersion != daemon.StatusFormatVersion {
		q.t.Fatalf("format_version %d", st.FormatVersion)
	}
	return st
}

func (q *quarantineDaemon) tuples() []string {
	q.t.Helper()
	var out []string
	for _, tu := range q.fga.Tuples(q.t, q.store) {
		out = append(out, tu.String())
	}
	slices.Sort(out)
	return out
}

func (q *quarantineDaemon) gauge(name string, labels ...string) float64 {
	q.t.Helper()
	return value(gatherText(q.t, q.d.Metrics()), name, labels...)
}

func (q *quarantineDaemon) approve(auth, id string) (int, daemon.ApproveAnswer) {
	q.t.Helper()
	code, _, body := q.do(http.MethodPost, "/quarantine/approve", auth, `{"plan_id": "`+id+`"}`)
	var a daemon.ApproveAnswer
	if code != http.StatusUnauthorized {
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			q.t.Fatalf("approve answered %d %q: %v", code, body, err)
		}
	}
	return code, a
}

// quarantine starts the daemon, syncs the full tenant, and lets a run trip
// max_delete_percent (staff shrinks from 20 to 5 members: 15 of 35 tuples).
func quarantine(t *testing.T) *quarantineDaemon {
	t.Helper()
	q := startFileDaemon(t)
	q.run()
	if n := len(q.tuples()); n != 35 {
		t.Fatalf("the first run wrote %d tuples, want 35", n)
	}
	fileTenant(t, q.tenant, 5)
	q.run()
	return q
}

func TestQuarantineWhenAGuardTrips(t *testing.T) {
	q := quarantine(t)
	before := q.tuples()
	if len(before) != 35 {
		t.Fatalf("a tripped run wrote: %d tuples", len(before))
	}
	st := q.status()
	qu := st.Quarantine
	if qu == nil || qu.Guard.Guard != gsync.GuardMaxDeletePercent || qu.Summary.ToDelete != 15 || qu.PlanID == "" ||
		len(qu.Changes) != 1 || qu.Changes[0].Object != "group:staff" || qu.Changes[0].Delete != 15 {
		t.Fatalf("quarantine in /status: %+v", qu)
	}
	if len(st.Runs) != 2 || st.Runs[0].Result != metrics.ResultGuard || st.Runs[0].Guard == nil || st.Runs[1].Result != metrics.ResultOK ||
		st.Runs[1].Summary.ToAdd != 35 || st.Runs[0].Mode != daemon.ModeFull || st.Source.LastRead == nil || st.Source.LastRead.Mode != "full" {
		t.Fatalf("runs in /status: %+v, source %+v", st.Runs, st.Source)
	}
	if !st.CanApprove || st.NextRun == nil || st.Instance != "test-instance" {
		t.Fatalf("status: can_approve %v, next_run %v, instance %q", st.CanApprove, st.NextRun, st.Instance)
	}
	if v := q.gauge("groupsync_quarantined"); v != 1 {
		t.Fatalf("groupsync_quarantined %v", v)
	}
	if v := q.gauge("groupsync_quarantine_info", "guard", gsync.GuardMaxDeletePercent, "plan_id", qu.PlanID); v != 1 {
		t.Fatalf("groupsync_quarantine_info %v", v)
	}

	// The same plan tripping again is not logged as news, and keeps its id.
	q.run()
	if got := q.status().Quarantine; got == nil || got.PlanID != qu.PlanID || !got.Since.Equal(qu.Since) {
		t.Fatalf("a second trip of the same plan: %+v", got)
	}
	if n := q.logs.FilterMessageSnippet("plan quarantined").Len(); n != 1 {
		t.Fatalf("%d 'plan quarantined' lines, want 1", n)
	}
	line := q.logs.FilterMessageSnippet("plan quarantined").All()[0].ContextMap()
	if line["guard"] != gsync.GuardMaxDeletePercent || line["plan_id"] != qu.PlanID || line["to_delete"] != int64(15) ||
		!strings.Contains(fmt.Sprint(line["approve"]), "groupsync approve") {
		t.Fatalf("the quarantine log line: %v", line)
	}

	// The page shows it too, to a client that asks for HTML.
	req, _ := http.NewRequest(http.MethodGet, q.url+"/status", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") ||
		!strings.Contains(string(page), "Quarantined plan awaiting approval") || !strings.Contains(string(page), qu.PlanID) ||
		strings.Contains(string(page), token) || strings.Contains(string(page), "u01") {
		t.Fatalf("the page (%s) shows no quarantine, or shows users or the token:\n%s", ct, page)
	}

	// An event run that trips nothing says nothing of the whole tenant: the
	// full run's plan stays quarantined. The event is listed.
	if code, _, body := q.do(http.MethodPost, "/sync/user/u01?wait=true", hookToken, ""); code != http.StatusOK {
		t.Fatalf("event run: %d %s", code, body)
	}
	st = q.status()
	if st.Quarantine == nil || st.Quarantine.PlanID != qu.PlanID || st.Runs[0].Mode != daemon.ModeSlice ||
		len(st.Events) != 1 || st.Events[0].Key != "user:u01" || st.Events[0].Outcome != daemon.EventQueued {
		t.Fatalf("after an event run: quarantine %+v, run %+v, events %+v", st.Quarantine, st.Runs[0], st.Events)
	}

	// The source recovers: the next run clears the quarantine.
	fileTenant(t, q.tenant, 20)
	q.run()
	if got := q.status().Quarantine; got != nil {
		t.Fatalf("still quarantined after the source recovered: %+v", got)
	}
	if v := q.gauge("groupsync_quarantined"); v != 0 {
		t.Fatalf("groupsync_quarantined %v after recovery", v)
	}
	if v := q.gauge("groupsync_quarantine_info"); v != -1 {
		t.Fatalf("groupsync_quarantine_info has a series after recovery: %v", v)
	}
	if q.logs.FilterMessageSnippet("source recovered").Len() != 1 {
		t.Fatal("no 'source recovered' log line")
	}
	if !slices.Equal(q.tuples(), before) {
		t.Fatal("tuples changed")
	}
}

func TestApproveTheQuarantinedPlan(t *testing.T) {
	q := quarantine(t)
	before := q.tuples()
	id := q.status().Quarantine.PlanID

	for _, auth := range []string{"", "wrong-token-0123456789"} {
		if code, _ := q.approve(auth, id); code != http.StatusUnauthorized {
			t.Fatalf("approve with token %q: %d, want 401", auth, code)
		}
		if code, _, _ := q.do(http.MethodGet, "/quarantine/plan", auth, ""); code != http.StatusUnauthorized {
			t.Fatalf("GET /quarantine/plan with token %q: %d, want 401", auth, code)
		}
	}
	if code, a := q.approve(token, "0123456789abcdef"); code != http.StatusConflict || a.Applied || !strings.Contains(a.Reason, id) {
		t.Fatalf("approve of another plan id: %d %+v", code, a)
	}
	if code, a := q.approve(token, "not-an-id"); code != http.StatusBadRequest || !strings.Contains(a.Reason, "plan_id") {
		t.Fatalf("approve of a malformed id: %d %+v", code, a)
	}
	if !slices.Equal(q.tuples(), before) {
		t.Fatal("a refused approval wrote")
	}

	// The plan file is the approval: exactly the 15 deletes, forced.
	code, h, body := q.do(http.MethodGet, "/quarantine/plan", token, "")
	var sp gsync.SavedPlan
	if code != http.StatusOK || json.Unmarshal([]byte(body), &sp) != nil || h.Get(daemon.PlanIDHeader) != id ||
		!sp.Forced || len(sp.Deletes) != 15 || len(sp.Adds) != 0 {
		t.Fatalf("GET /quarantine/plan: %d %s forced=%v deletes=%d", code, h.Get(daemon.PlanIDHeader), sp.Forced, len(sp.Deletes))
	}

	code, a := q.approve(token, id)
	if code != http.StatusOK || !a.Applied || a.Outcome == nil || a.Outcome.Applied == nil || a.Outcome.Applied.Deleted != 15 {
		t.Fatalf("approve: %d %+v", code, a)
	}
	var want []string
	for _, tu := range before {
		if !slices.ContainsFunc(sp.Deletes, func(d gsync.Tuple) bool { return d.String() == tu }) {
			want = append(want, tu)
		}
	}
	if got := q.tuples(); len(got) != 20 || !slices.Equal(got, want) {
		t.Fatalf("after approval: %d tuples, want exactly the plan's 20:\n%v", len(got), got)
	}
	st := q.status()
	if st.Quarantine != nil || st.Runs[0].Mode != daemon.ModeApprove || st.Runs[0].PlanID != id || st.Runs[0].Result != metrics.ResultOK {
		t.Fatalf("after approval: quarantine %+v, last run %+v", st.Quarantine, st.Runs[0])
	}
	if v := q.gauge("groupsync_quarantine_approvals_total", "result", "applied"); v != 1 {
		t.Fatalf("approvals applied %v", v)
	}
	if code, a := q.approve(token, id); code != http.StatusConflict || !strings.Contains(a.Reason, "no plan is quarantined") {
		t.Fatalf("a second approval: %d %+v", code, a)
	}
	// The source agrees with OpenFGA now: the next run has nothing to do.
	q.run()
	if st := q.status(); st.Quarantine != nil || st.Runs[0].Summary == nil || st.Runs[0].Summary.ToDelete != 0 {
		t.Fatalf("the run after approval: %+v", st.Runs[0])
	}
}

func TestApproveAStalePlanWritesNothing(t *testing.T) {
	q := quarantine(t)
	id := q.status().Quarantine.PlanID
	// Someone changes OpenFGA under the quarantined plan.
	q.fga.DeleteTuples(t, q.store, gsync.Tuple{User: "user:u01", Relation: "member", Object: "group:eng"})
	before := q.tuples()

	code, a := q.approve(token, id)
	if code != http.StatusConflict || !a.Stale || a.Applied || !strings.Contains(a.Reason, "stale") {
		t.Fatalf("approve of a stale plan: %d %+v", code, a)
	}
	if !slices.Equal(q.tuples(), before) {
		t.Fatal("a stale approval wrote")
	}
	st := q.status()
	if st.Quarantine == nil || st.Quarantine.PlanID != id || st.Quarantine.Stale == "" {
		t.Fatalf("after a stale approval: %+v", st.Quarantine)
	}
	if v := q.gauge("groupsync_quarantine_approvals_total", "result", "stale"); v != 1 {
		t.Fatalf("approvals stale %v", v)
	}
	// The next run trips again with the newer plan, which replaces it.
	q.run()
	if got := q.status().Quarantine; got == nil || got.PlanID == id || got.Stale != "" {
		t.Fatalf("the next run did not replace the stale plan: %+v", got)
	}
}

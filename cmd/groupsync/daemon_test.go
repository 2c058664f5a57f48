package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/groupsync/groupsync/deploy"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
)

// msgraph-sdk-go-core creates its error-mapping registry lazily without
// synchronization; the race detector sees it when the first $batch
// requests go out in parallel. Create it before any test does that.
func init() { msgraphcore.GetErrorFactoryFromRegistry("") }

// syncBuffer is a log destination the test reads while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLine returns the first JSON log line whose msg is msg, waiting up to
// a minute for it.
func (s *syncBuffer) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		sc := bufio.NewScanner(strings.NewReader(s.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q in:\n%s", msg, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls url until its status is code and its body holds want.
func waitFor(t *testing.T, url string, code int, want string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, body := httpGet(t, url)
		if c == code && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d with %q", url, c, body, code, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue finds "name{labels} value" in a scrape; labels must be
// written as the exposition format orders them (alphabetically).
func metricValue(scrape, series string) (float64, bool) {
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f, true
			}
		}
	}
	return 0, false
}

// The acceptance test through the real CLI: `groupsync daemon`
// against graphtest and a real OpenFGA runs at start, serves /metrics that
// show the completed run, runs on POST /run, reloads on SIGHUP (refusing
// a broken config) and exits 0 on SIGTERM.
func TestDaemonCommand(t *testing.T) {
	const token = "trigger-token-0123456789"
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 7, Users: 400, Groups: 50, MaxDepth: 2, MembersPerGroup: 10,
		GuestFraction: 0.05, DisabledFraction: 0.05, Devices: 20})
	graph := graphtest.New(t, tenant)
	srv := fgatest.New(t)
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_TOKEN", graph.Token())
	t.Setenv("GROUPSYNC_DAEMON_TRIGGER_TOKEN", token)
	good := fmt.Sprintf(`source:
  type: msgraph
  msgraph: {auth: token, graph_endpoint: %q}
openfga: {api_url: %q, store_name: daemon-test}
mapping: {group: {key: id}, nesting: userset}
daemon:
  schedule: "@hourly"
  listen: 127.0.0.1:0
  shutdown_grace: 5s
  trigger: {enabled: true}
`, graph.URL, srv.URL)
	cfg := filepath.Join(t.TempDir(), "groupsync.yaml")
	if err := os.WriteFile(cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	// The store and the model the mapping needs, the documented way.
	if code, out, errOut := cli(t, "model", "write", "-c", cfg); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}

	// Runs log their progress once they pass progressTiming.first: here
	// at once, so the first run shows the lines a long one would.
	saved := progressTiming
	progressTiming.first, progressTiming.every = 0, 5*time.Millisecond
	t.Cleanup(func() { progressTiming = saved })

	var stdout bytes.Buffer
	base, exit, stderr := startDaemon(t, cfg, &stdout)

	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz %d %q", code, body)
	}
	waitFor(t, base+"/readyz", 200, "last successful run ended")

	summary := stderr.logLine(t, "run finished")
	if !strings.Contains(stderr.String(), `"msg":"progress: done after`) {
		t.Errorf("the daemon's run logged no progress:\n%s", stderr.String())
	}
	_, scrape := httpGet(t, base+"/metrics")
	added, _ := metricValue(scrape, `groupsync_tuples_written_total{operation="add"}`)
	if summary["result"] != "ok" || summary["trigger"] != "start" || summary["added"] != added || added < 100 ||
		summary["source_requests"].(float64) == 0 || summary["sink_requests"].(float64) == 0 {
		t.Fatalf("summary line %v; written %v", summary, added)
	}
	for _, s := range []struct {
		series string
		ok     func(float64) bool
	}{
		{`groupsync_runs_total{result="ok"}`, func(v float64) bool { return v == 1 }},
		{`groupsync_tuples_planned_total{operation="add"}`, func(v float64) bool { return v == added }},
		{`groupsync_tuples_failed_total{operation="add"}`, func(v float64) bool { return v == 0 }},
		{`groupsync_source_groups`, func(v float64) bool { return v == 50 }},
		{`groupsync_skipped{kind="user",reason="disabled"}`, func(v float64) bool { return v > 0 }},
		{`groupsync_run_duration_seconds_count`, func(v float64) bool { return v == 1 }},
		{`groupsync_source_batch_items_total`, func(v float64) bool { return v > 0 }},
		{`groupsync_build_info{version="dev"}`, func(v float64) bool { return v == 1 }},
		{`groupsync_config_last_reload_successful`, func(v float64) bool { return v == 1 }},
		// The source's and the sink's requests, through newEngine's options.
		{`groupsync_http_requests_total{code="200",method="GET",target="source"}`, func(v float64) bool { return v > 0 }},
		{`groupsync_http_requests_total{code="200",method="POST",target="source"}`, func(v float64) bool { return v > 0 }},
		{`groupsync_http_requests_total{code="200",method="POST",target="sink"}`, func(v float64) bool { return v > 0 }},
	} {
		if v, ok := metricValue(scrape, s.series); !ok || !s.ok(v) {
			t.Errorf("%s = %v (found %v)", s.series, v, ok)
		}
	}

	// POST /run: refused without the token, runs with it.
	post := func(auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/run?wait=true", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := post(""); resp.StatusCode != 401 {
		t.Fatalf("POST /run without a token: %d", resp.StatusCode)
	}
	resp := post("Bearer " + token)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"to_add": 0`) {
		t.Fatalf("POST /run: %d %s", resp.StatusCode, body)
	}

	// SIGHUP with a broken config: refused, the daemon says so and goes on.
	if err := os.WriteFile(cfg, []byte(strings.Replace(good, `"@hourly"`, `"every hour"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ready := waitFor(t, base+"/readyz", 200, "refused")
	if !strings.Contains(ready, `daemon.schedule: "every hour" does not parse`) {
		t.Fatalf("/readyz after a refused reload: %s", ready)
	}
	if _, scrape := httpGet(t, base+"/metrics"); !strings.Contains(scrape, "groupsync_config_last_reload_successful 0") {
		t.Fatal("the refused reload is not in the metrics")
	}
	// Fixed, with the trigger turned off: POST /run is gone.
	if err := os.WriteFile(cfg, []byte(strings.Replace(good, "trigger: {enabled: true}", "trigger: {enabled: false}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	stderr.logLine(t, "config reloaded")
	if resp := post("Bearer " + token); resp.StatusCode != 404 {
		t.Fatalf("POST /run after the trigger was turned off: %d", resp.StatusCode)
	}

	// SIGTERM: exit 0, promptly.
	stopDaemon(t, exit, stderr)
	if strings.Contains(stderr.String(), token) || strings.Contains(stdout.String(), token) {
		t.Fatal("the trigger token was printed")
	}
	if stdout.Len() != 0 {
		t.Fatalf("the daemon wrote to stdout: %s", stdout.String())
	}
}

func TestDaemonCommandErrors(t *testing.T) {
	srv := fgatest.New(t)
	bad := exampleConfig(t, srv, "daemon: {schedule: \"@every 10m\", jitter: 20m}\n")
	code, _, errOut := cli(t, "daemon", "-c", bad)
	if code != 1 || !strings.Contains(errOut, "daemon.jitter: ") {
		t.Fatalf("invalid daemon section: %d %s", code, errOut)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	code, _, errOut = cli(t, "daemon", "-c", exampleConfig(t, srv, "daemon: {listen: \""+addr+"\"}\n"))
	if code != 1 || !strings.Contains(errOut, `daemon.listen "`+addr+`"`) {
		t.Fatalf("a port that cannot be bound: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "daemon", "extra"); code != 1 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("daemon with an argument: %d %s", code, errOut)
	}
}

// Every container of every way of deploying groupsync (each Kustomize
// overlay, the Helm chart with each value set in deploy.ChartValues) runs
// arguments the real CLI accepts: a known command, known flags with valid
// values, no stray arguments.
func TestDeployArgsParseWithTheCLI(t *testing.T) {
	variants, err := deploy.Variants(filepath.Join("..", "..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range variants {
		for _, w := range deploy.Workloads(v.Objects) {
			for _, c := range w.Pod.Spec.Containers {
				name, err := parseArgs(c.Args)
				if err != nil {
					t.Errorf("%s, %s, container %s: args %q: %v", v.Name, w.Object, c.Name, c.Args, err)
				}
				seen[name] = true
			}
		}
	}
	if !seen["apply"] || !seen["daemon"] || len(variants) < 4 {
		t.Fatalf("commands deployed: %v in %d variants; want apply (CronJob) and daemon (Deployment)", seen, len(variants))
	}
	// The check bites.
	for _, bad := range [][]string{{"aply"}, {"daemon", "--bogus"}, {"apply", "plan.json", "extra"}, {"daemon", "--log-format=xml"}, {}} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("args %q passed", bad)
		}
	}
}

// parseArgs parses args as the groupsync binary would, without running
// anything, and returns the command's name.
func parseArgs(args []string) (string, error) {
	o := &options{stdout: io.Discard, stderr: io.Discard}
	root := newRoot(o)
	cmd, rest, err := root.Find(args)
	if err != nil {
		return "", err
	}
	if cmd == root || !cmd.Runnable() {
		return "", fmt.Errorf("no command to run")
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return "", err
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return "", err
	}
	// The values the commands check first: log level and format.
	if _, err := o.logger(); err != nil {
		return "", err
	}
	return cmd.Name(), nil
}

// plan and apply push their metrics to a Pushgateway: the run, what it
// wrote, and the requests it sent.
func TestApplyPushesMetrics(t *testing.T) {
	var (
		mu     sync.Mutex
		pushes []string
	)
	pg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What the Pushgateway would store, as text.
		var text strings.Builder
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if dec.Decode(&mf) != nil {
				break
			}
			_, _ = expfmt.MetricFamilyToText(&text, &mf)
		}
		mu.Lock()
		pushes = append(pushes, r.Method+" "+r.URL.Path+"\n"+text.String())
		mu.Unlock()
	}))
	defer pg.Close()
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	if code, _, errOut := cli(t, "model", "write", "-c", cfg); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--pushgateway", pg.URL, "--pushgateway-job", "gs-test"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	// Configured instead of flagged, and for a run that fails early.
	t.Setenv("GROUPSYNC_DAEMON_PUSHGATEWAY_URL", pg.URL)
	t.Setenv("GROUPSYNC_OPENFGA_STORE_NAME", "no-such-store")
	if code, _, _ := cli(t, "plan", "-c", cfg); code != 1 {
		t.Fatalf("plan of a missing store: exit %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) != 2 {
		t.Fatalf("%d pushes", len(pushes))
	}
	for _, want := range []string{"PUT /metrics/job/gs-test\n", `groupsync_runs_total{result="ok"} 1`,
		`groupsync_tuples_written_total{operation="add"} 10`, `groupsync_http_requests_total{code="200",method="POST",target="sink"}`} {
		if !strings.Contains(pushes[0], want) {
			t.Errorf("the apply's push lacks %s:\n%s", want, pushes[0])
		}
	}
	for _, want := range []string{"PUT /metrics/job/groupsync\n", `groupsync_runs_total{result="error"} 1`} {
		if !strings.Contains(pushes[1], want) {
			t.Errorf("the failed plan's push lacks %s:\n%s", want, pushes[1])
		}
	}
}

// SIGTERM in the middle of an apply: the write in flight completes, no
// further write is sent, and the daemon exits 0.
func TestDaemonSIGTERMMidApply(t *testing.T) {
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 8, Users: 200, Groups: 40, MaxDepth: 1, MembersPerGroup: 10})
	graph := graphtest.New(t, tenant)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := fgatest.New(t, fgatest.WithFault(func(r fgatest.Request) *fgatest.Fault {
		if r.Endpoint == fgatest.Write && r.N == 2 {
			once.Do(func() { close(arrived) })
			<-release
		}
		return nil
	}))
	storeID, _ := srv.CreateStore(t, "sigterm", fgatest.GroupModel)
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_TOKEN", graph.Token())
	cfg := filepath.Join(t.TempDir(), "groupsync.yaml")
	doc := fmt.Sprintf(`source: {type: msgraph, msgraph: {auth: token, graph_endpoint: %q}}
openfga: {api_url: %q, store_id: %q, max_tuples_per_write: 10, max_parallel_writes: 1}
mapping: {group: {key: id}, nesting: userset}
sync: {ownership: {mode: authoritative}, lease: {enabled: false}}
daemon: {schedule: "@hourly", listen: "127.0.0.1:0", shutdown_grace: 20s}
`, graph.URL, srv.URL, storeID)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"daemon", "-c", cfg, "--log-format=json"}, io.Discard, stderr) }()
	select {
	case <-arrived:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no second write:\n%s", stderr.String())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stderr.logLine(t, "stopping: no new requests; waiting for those in flight")
	close(release)
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	writes := srv.Writes()
	if len(writes) != 2 || writes[1].Status != 200 {
		t.Fatalf("writes %+v", writes)
	}
	if n := len(srv.Tuples(t, storeID)); n != 20 {
		t.Fatalf("%d tuples stored, want the two chunks", n)
	}
	if line := stderr.logLine(t, "run finished"); line["added"] != float64(20) || line["result"] != "error" {
		t.Fatalf("summary %v", line)
	}
}

// startDaemon runs groupsync daemon with cfg, its stdout into stdout, and
// returns its base URL once it serves, its exit code's channel and its log.
func startDaemon(t *testing.T, cfg string, stdout io.Writer) (base string, exit chan int, stderr *syncBuffer) {
	t.Helper()
	stderr = &syncBuffer{}
	exit = make(chan int, 1)
	go func() { exit <- run([]string{"daemon", "-c", cfg, "--log-format=json"}, stdout, stderr) }()
	addr, _ := stderr.logLine(t, "serving /metrics, /healthz, /readyz and /run")["addr"].(string)
	return "http://" + addr, exit, stderr
}

// stopDaemon sends the test process SIGTERM, as Kubernetes does, and
// expects the daemon started with run to exit 0 within 15 s.
func stopDaemon(t *testing.T, exit <-chan int, stderr *syncBuffer) {
	t.Helper()
	begin := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the daemon did not exit within 15s of SIGTERM")
	}
	t.Logf("stopped %s after SIGTERM", time.Since(begin).Round(time.Millisecond))
}

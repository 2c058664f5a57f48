// Command groupsync-bench measures groupsync end to end: it generates Entra
// tenants of three sizes, serves them with graphtest (with Graph-like
// latency, and throttling when asked), runs the real groupsync binary
// against a real OpenFGA (on PostgreSQL, started by scripts/bench.sh), and
// compares it with two baselines run the same way: the raw write ceiling
// (the same tuples written straight to OpenFGA, best chunking and
// parallelism, no reading or diffing) and a naive sync (one write request
// per tuple, delete-then-add for every group, as ad-hoc scripts do).
//
// It writes the results as Markdown (BENCHMARKS.md) and a data file for the
// plot. Run it through scripts/bench.sh, which starts PostgreSQL and OpenFGA.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

type size struct {
	Name            string
	Users, Groups   int
	MembersPerGroup int
}

var sizes = map[string]size{
	"small":  {"small", 1_000, 100, 90},
	"medium": {"medium", 10_000, 1_000, 90},
	"large":  {"large", 100_000, 10_000, 90},
}

type options struct {
	fgaURL, bin, out, data, analyze string
	sizes                           []string
	latency                         time.Duration
	throttle                        bool
	naiveBudget                     time.Duration
	work, profiles                  string
	skipBaselines, hold             bool
}

func main() {
	var o options
	var sizeList string
	flag.StringVar(&o.fgaURL, "openfga", "http://127.0.0.1:18180", "OpenFGA HTTP API")
	flag.StringVar(&o.bin, "groupsync", "groupsync", "the groupsync binary to measure")
	flag.StringVar(&sizeList, "sizes", "small,medium,large", "tenant sizes to run")
	flag.DurationVar(&o.latency, "graph-latency", 30*time.Millisecond, "latency of every Graph request")
	flag.BoolVar(&o.throttle, "graph-throttle", false, "throttle Graph like a tenant of this size (3,500-8,000 RU per 10 s)")
	flag.DurationVar(&o.naiveBudget, "naive-budget", 90*time.Second, "time the naive baseline may run per size before its rate is projected")
	flag.StringVar(&o.out, "out", "", "write the Markdown results here (default: stdout)")
	flag.StringVar(&o.data, "data", "", "write the plot's data file here")
	flag.StringVar(&o.analyze, "analyze", "", "shell command run after each bulk load (e.g. psql -c 'ANALYZE tuple')")
	flag.StringVar(&o.work, "work", os.TempDir(), "directory for configs")
	flag.StringVar(&o.profiles, "cpuprofiles", "", "write a CPU profile and a near-peak heap profile of every groupsync run into this directory")
	flag.BoolVar(&o.skipBaselines, "skip-baselines", false, "measure groupsync only")
	flag.BoolVar(&o.hold, "hold", false, "after the incremental scenarios of each size, keep the tenant and store up until interrupted (to profile by hand)")
	flag.Parse()
	o.sizes = strings.Split(sizeList, ",")
	if err := bench(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "groupsync-bench:", err)
		os.Exit(1)
	}
}

// counter is a reverse proxy in front of OpenFGA that counts requests, so
// that groupsync and the baselines are measured the same way.
type counter struct {
	reads, writes, other atomic.Int64
	url                  string
}

func newCounter(target string) (*counter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	c := &counter{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	proxy.Transport = tr
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.url = "http://" + ln.Addr().String()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/read"):
			c.reads.Add(1)
		case strings.HasSuffix(r.URL.Path, "/write"):
			c.writes.Add(1)
		default:
			c.other.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	return c, nil
}

// snapshot is the reads, writes and other requests (the changelog,
// models, stores) so far.
func (c *counter) snapshot() [3]int64 {
	return [3]int64{c.reads.Load(), c.writes.Load(), c.other.Load()}
}

// measurement is one row of a results table.
type measurement struct {
	Size, Scenario    string
	Wall              time.Duration
	GraphRequests     int64 // HTTP requests to Graph ($batch counts once)
	GraphItems        int64 // requests carried inside $batch
	FGAReads          int64
	FGAWrites         int64
	FGAOther          int64 // ReadChanges, model and store reads
	Added, Deleted    int
	PeakRSSBytes      int64
	TotalAllocBytes   int64
	Mallocs           int64
	Projected         bool // naive: extrapolated from a time-boxed run
	Memberships       int  // direct memberships in the tenant
	DesiredTuples     int
	GraphMinRequests  int64
	ExistingBeforeRun int
	// The event scenarios: changes sent, latency from a change in Graph to
	// the tuple in OpenFGA, and changes that never arrived.
	Changes  int
	P50, P99 time.Duration
	Missed   int
}

func bench(ctx context.Context, o options) error {
	fga, err := newCounter(o.fgaURL)
	if err != nil {
		return err
	}
	var all []measurement
	for _, name := range o.sizes {
		sz, ok := sizes[name]
		if !ok {
			return fmt.Errorf("unknown size %q", name)
		}
		ms, err := benchSize(ctx, o, fga, sz)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, ms...)
	}
	return report(o, all)
}

func benchSize(ctx context.Context, o options, fga *counter, sz size) ([]measurement, error) {
	log := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%s %s] %s\n", time.Now().Format("15:04:05"), sz.Name, fmt.Sprintf(format, args...))
	}
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 42, Users: sz.Users, Groups: sz.Groups, MaxDepth: 3,
		MembersPerGroup: sz.MembersPerGroup, GuestFraction: 0.03, DisabledFraction: 0.02, Devices: sz.Users / 50, Cycles: 1})
	memberships := 0
	for _, g := range tenant.Groups {
		memberships += len(g.Members)
	}
	log("tenant: %d users, %d groups, %d memberships", len(tenant.Users), len(tenant.Groups), memberships)
	// Group.Read.All: the events scenario subscribes to change notifications.
	gopts := []graphtest.Option{graphtest.WithLatency(o.latency), graphtest.WithPermissions("Group.Read.All", "User.Read.All")}
	if o.throttle {
		gopts = append(gopts, graphtest.WithThrottling(throttleBudget(sz.Users)))
	}
	graph := graphtest.NewServer(tenant, gopts...)
	defer graph.Close()

	cfg := config.Default()
	cfg.OpenFGA.APIURL = fga.url
	cfg.Mapping.Nesting = "userset"
	cfg.Mapping.Group.Lowercase = true
	cfg.Mapping.Group.ReplaceWhitespace = "-"
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return nil, err
	}
	// A project type whose grants take a group's members, as applications
	// such as Incus have, so that target-driven runs look for grants.
	dsl := mapper.ModelDSL() + "\n" + openfga.OwnershipDSL(cfg.Sync.Ownership.Type, cfg.Mapping.ObjectType) +
		"\ntype project\n  relations\n    define viewer: [user, group#member]\n"
	newStore := func(label string) (string, error) {
		c := cfg.OpenFGA
		c.StoreName = fmt.Sprintf("bench-%s-%s-%d", sz.Name, label, time.Now().UnixNano()%1_000_000)
		id, _, _, err := openfga.EnsureStore(ctx, c, dsl)
		return id, err
	}
	storeID, err := newStore("groupsync")
	if err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	cfgPath := filepath.Join(o.work, "groupsync-bench-"+sz.Name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`source:
  type: msgraph
  msgraph:
    auth: token
    graph_endpoint: %s
openfga:
  api_url: %s
  store_id: %s
mapping:
  nesting: userset
  group:
    lowercase: true
    replace_whitespace: "-"
sync:
  guards:
    max_deletes: 0
    max_delete_percent: 0
`, graph.URL, fga.url, storeID)), 0o600); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "GROUPSYNC_SOURCE_MSGRAPH_TOKEN="+graph.Token(), "GROUPSYNC_MEMSTATS=1")

	var out []measurement
	run := func(scenario string, extraEnv ...string) (measurement, error) {
		graph.ResetStats()
		before := fga.snapshot()
		runEnv := append(slices.Clone(env), extraEnv...)
		stderrPath := ""
		if o.profiles != "" {
			base := filepath.Join(o.profiles, sz.Name+"-"+strings.NewReplacer(" ", "-", "%", "pct", ",", "", "=", "").Replace(scenario))
			// The GC's trace shows what the heap held and aimed for at each
			// collection: peak RSS is the largest of those goals.
			runEnv = append(runEnv, "GROUPSYNC_CPUPROFILE="+base+".prof", "GROUPSYNC_HEAPPROFILE="+base+".heap", "GODEBUG=gctrace=1")
			stderrPath = base + ".stderr"
		}
		m, err := runGroupsync(ctx, o.bin, cfgPath, runEnv, stderrPath)
		if err != nil {
			return m, fmt.Errorf("%s: %w", scenario, err)
		}
		st := graph.Stats()
		after := fga.snapshot()
		m.Size, m.Scenario, m.Memberships = sz.Name, scenario, memberships
		m.GraphRequests, m.GraphItems = st.Requests, st.BatchItems
		m.FGAReads, m.FGAWrites, m.FGAOther = after[0]-before[0], after[1]-before[1], after[2]-before[2]
		log("%-12s %8.2fs  graph %d requests (%d batched)  openfga %d reads %d writes %d other  +%d -%d  rss %d MB",
			scenario, m.Wall.Seconds(), m.GraphRequests, m.GraphItems, m.FGAReads, m.FGAWrites, m.FGAOther, m.Added, m.Deleted, m.PeakRSSBytes>>20)
		out = append(out, m)
		return m, nil
	}

	first, err := run("first sync")
	if err != nil {
		return nil, err
	}
	first.GraphMinRequests = minGraphRequests(graph.Tenant())
	out[len(out)-1] = first
	if o.analyze != "" {
		if err := exec.Command("sh", "-c", o.analyze).Run(); err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
	}
	if _, err := run("no change"); err != nil {
		return nil, err
	}
	if err := graph.Mutate(func(t *graphtest.Tenant) { t.MoveMemberships(0.01, 7) }); err != nil {
		return nil, err
	}
	if _, err := run("1% changed"); err != nil {
		return nil, err
	}
	if err := graph.Mutate(renameLargest); err != nil {
		return nil, err
	}
	if _, err := run("group renamed"); err != nil {
		return nil, err
	}

	// Target-driven with grant discovery on (the model has a type whose
	// grants name groups): what the same no-change run costs when the
	// groups in use are found in the store rather than in a registry.
	cfgData, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	targetDriven := strings.Replace(string(cfgData), "sync:\n", "sync:\n  ownership: {mode: target-driven}\n", 1)
	if err := os.WriteFile(cfgPath, []byte(targetDriven), 0o600); err != nil {
		return nil, err
	}
	if _, err := run("no change, target-driven"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, cfgData, 0o600); err != nil {
		return nil, err
	}

	// Incremental: the same tenant read through Graph delta queries. The
	// first delta run reads in full and keeps the state; the measured run
	// reads only the changes.
	statePath := filepath.Join(o.work, "groupsync-bench-"+sz.Name+".state")
	_ = os.Remove(statePath)
	delta := strings.Replace(string(cfgData), "    auth: token\n", fmt.Sprintf("    auth: token\n    delta: {enabled: true, full_sync_every: 0s, state: {type: file, path: %s}}\n", statePath), 1)
	if err := os.WriteFile(cfgPath, []byte(delta), 0o600); err != nil {
		return nil, err
	}
	if _, err := run("delta seed (full read)"); err != nil {
		return nil, err
	}
	if err := graph.Mutate(func(t *graphtest.Tenant) { t.MoveMemberships(0.01, 11) }); err != nil {
		return nil, err
	}
	if _, err := run("1% changed, incremental"); err != nil {
		return nil, err
	}
	// Incremental on both sides: Graph delta queries and OpenFGA's
	// changelog (sync.incremental), states in files. The seed reads both in
	// full; then nothing changes; then 1% of the memberships move; then
	// 100 tuples of owned groups are deleted behind groupsync's back.
	targetState := filepath.Join(o.work, "groupsync-bench-"+sz.Name+".openfga-state")
	_ = os.Remove(targetState)
	both := strings.Replace(delta, "sync:\n", fmt.Sprintf("sync:\n  incremental: {full_every: 0s, state: {type: file, path: %s}}\n", targetState), 1)
	if err := os.WriteFile(cfgPath, []byte(both), 0o600); err != nil {
		return nil, err
	}
	if _, err := run("incremental seed (full read)"); err != nil {
		return nil, err
	}
	if _, err := run("no change, incremental"); err != nil {
		return nil, err
	}
	// The same with a soft memory limit, as a container with a memory limit
	// would set (GOMEMLIMIT): what the heap needs rather than what the GC's
	// default headroom lets it grow to.
	if _, err := run("no change, incremental, GOMEMLIMIT=150MiB", "GOMEMLIMIT=150MiB"); err != nil {
		return nil, err
	}
	if err := graph.Mutate(func(t *graphtest.Tenant) { t.MoveMemberships(0.01, 13) }); err != nil {
		return nil, err
	}
	if _, err := run("1% changed, incremental both sides"); err != nil {
		return nil, err
	}
	if err := deleteBehindTheBack(ctx, cfg.OpenFGA, storeID, mapper.Scope(), 100); err != nil {
		return nil, err
	}
	if m, err := run("100 deleted by hand, incremental"); err != nil {
		return nil, err
	} else if m.Added != 100 {
		log("WARNING: the incremental run repaired %d of the 100 tuples deleted by hand", m.Added)
	}
	if o.hold {
		// For profiling by hand: the tenant, the store and both states stay
		// as the last incremental run left them.
		envPath := filepath.Join(o.work, "hold.env")
		if err := os.WriteFile(envPath, []byte("GROUPSYNC_SOURCE_MSGRAPH_TOKEN="+graph.Token()+"\n"), 0o600); err != nil {
			return nil, err
		}
		log("holding: run e.g. env $(cat %s) GROUPSYNC_MEMSTATS=1 %s apply -c %s; interrupt to go on", envPath, o.bin, cfgPath)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		signal.Stop(sig)
	}
	if err := os.WriteFile(cfgPath, cfgData, 0o600); err != nil {
		return nil, err
	}
	// A build without change notifications (an older one, GROUPSYNC_BIN)
	// cannot run these: recorded as missing, the rest still measured.
	events, err := benchEvents(ctx, o, fga, graph, string(cfgData), storeID, env, sz, log)
	if err != nil {
		log("events not measured: %v", err)
	}
	out = append(out, events...)

	if o.skipBaselines {
		return out, nil
	}
	// Baselines, against the tuples groupsync now manages.
	sink, err := openfga.New(ctx, withStore(cfg.OpenFGA, storeID))
	if err != nil {
		return nil, err
	}
	scope := mapper.Scope()
	tuples, err := sink.Read(ctx, scope)
	if err != nil {
		return nil, err
	}
	objects := objectsOf(tuples)
	log("baselines over %d tuples in %d groups", len(tuples), len(objects))

	read, err := bareRead(ctx, fga, sink, scope, objects)
	if err != nil {
		return nil, err
	}
	read.Size, read.Memberships = sz.Name, memberships
	out = append(out, read)
	log("%-12s %8.2fs  openfga %d reads", read.Scenario, read.Wall.Seconds(), read.FGAReads)

	ceiling, err := rawCeiling(ctx, o, fga, cfg.OpenFGA, newStore, tuples, log)
	if err != nil {
		return nil, err
	}
	ceiling.Size, ceiling.Memberships = sz.Name, memberships
	out = append(out, ceiling)

	naive, err := naiveSync(ctx, o, fga, cfg.OpenFGA, newStore, tuples)
	if err != nil {
		return nil, err
	}
	naive.Size, naive.Memberships = sz.Name, memberships
	out = append(out, naive)
	log("%-12s %8.2fs%s  openfga %d reads %d writes", naive.Scenario, naive.Wall.Seconds(), map[bool]string{true: " (projected)"}[naive.Projected], naive.FGAReads, naive.FGAWrites)
	for i := range out {
		out[i].DesiredTuples = len(tuples)
	}
	return out, nil
}

// throttleBudget is Graph's identity-read budget per 10 s for a tenant of
// this many users.
func throttleBudget(users int) int {
	switch {
	case users < 50:
		return 3500
	case users <= 500:
		return 5000
	}
	return 8000
}

func withStore(c config.OpenFGA, id string) config.OpenFGA {
	c.StoreID, c.StoreName = id, ""
	return c
}

// runGroupsync runs `groupsync apply` as its own process, so its wall time,
// peak RSS and allocations are its own. With stderrPath, its standard error
// is kept there.
//
// Peak RSS is the process's own high-water mark (VmHWM), which groupsync
// reports at exit (GROUPSYNC_MEMSTATS). Not rusage's ru_maxrss: Go starts
// children with vfork, and Linux carries the high-water mark of the address
// space a child leaves at exec (this harness's, with the whole tenant in
// it) into the child's ru_maxrss, so every run measured at least the
// harness's own RSS.
func runGroupsync(ctx context.Context, bin, cfg string, env []string, stderrPath string) (measurement, error) {
	cmd := exec.CommandContext(ctx, bin, "apply", "-c", cfg, "-o", "json", "--log-level", "warn")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	m := measurement{Wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.PeakRSSBytes = ru.Maxrss * 1024 // an upper bound, for a build that does not report VmHWM
	}
	if stderrPath != "" {
		os.WriteFile(stderrPath, stderr.Bytes(), 0o644)
	}
	if err != nil {
		return m, fmt.Errorf("groupsync apply: %v\n%s", err, tail(stderr.String(), 2000))
	}
	var rep gsync.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return m, fmt.Errorf("parse report: %w", err)
	}
	if rep.Result != nil {
		m.Added, m.Deleted = rep.Result.Added, rep.Result.Deleted
	}
	m.ExistingBeforeRun = rep.Summary.ExistingTuples
	for _, line := range strings.Split(stderr.String(), "\n") {
		if js, ok := strings.CutPrefix(line, "groupsync-memstats "); ok {
			var ms map[string]int64
			if json.Unmarshal([]byte(js), &ms) == nil {
				m.TotalAllocBytes, m.Mallocs = ms["total_alloc_bytes"], ms["mallocs"]
				if kb := ms["vmhwm_kb"]; kb > 0 {
					m.PeakRSSBytes = kb * 1024
				}
			}
		}
	}
	return m, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// minGraphRequests is the fewest Graph HTTP requests the read strategy can
// make: the group list in pages of 999, and every group's members (pages of
// 999) packed 20 to a $batch.
func minGraphRequests(t *graphtest.Tenant) int64 {
	pages := 0
	for _, g := range t.Groups {
		if g.MailEnabled && !g.SecurityEnabled && !slices.Contains(g.GroupTypes, "Unified") {
			continue // distribution lists are not read
		}
		pages += max(1, (len(g.Members)+998)/999)
	}
	return int64((len(t.Groups)+998)/999 + (pages+19)/20)
}

// renameLargest renames the synced group with the most direct user
// members: with groups keyed by name, all its tuples move.
func renameLargest(t *graphtest.Tenant) {
	users := map[string]bool{}
	for _, u := range t.Users {
		users[u.ID] = true
	}
	best, most := -1, 0
	for i, g := range t.Groups {
		if slices.Contains(config.DefaultExcludeNames, g.DisplayName) || (g.MailEnabled && !g.SecurityEnabled && !slices.Contains(g.GroupTypes, "Unified")) {
			continue // not synced
		}
		n := 0
		for _, m := range g.Members {
			if users[m] {
				n++
			}
		}
		if n > most {
			best, most = i, n
		}
	}
	t.Groups[best].DisplayName += " Renamed"
}

func objectsOf(ts []gsync.Tuple) []string {
	var out []string
	for _, t := range ts {
		if len(out) == 0 || out[len(out)-1] != t.Object {
			out = append(out, t.Object)
		}
	}
	return out
}

// bareRead reads the managed tuples the fastest way OpenFGA allows: the
// same per-group parallel reads as groupsync, and a whole-store scan; the
// faster counts.
func bareRead(ctx context.Context, fga *counter, sink *openfga.Sink, scope gsync.Scope, objects []string) (measurement, error) {
	best := measurement{Scenario: "bare read"}
	for _, objs := range [][]string{objects, nil} {
		s := scope
		s.Objects = objs
		before := fga.snapshot()
		start := time.Now()
		if _, err := sink.Read(ctx, s); err != nil {
			return best, err
		}
		wall := time.Since(start)
		after := fga.snapshot()
		if best.Wall == 0 || wall < best.Wall {
			best.Wall, best.FGAReads = wall, after[0]-before[0]
		}
	}
	return best, nil
}

// rawCeiling writes the tuples straight into fresh stores at 100 a request
// and a few parallelisms, and keeps the fastest.
func rawCeiling(ctx context.Context, o options, fga *counter, c config.OpenFGA, newStore func(string) (string, error),
	tuples []gsync.Tuple, log func(string, ...any)) (measurement, error) {
	best := measurement{Scenario: "raw writes"}
	parallel := []int{2, 4, 8}
	if len(tuples) > 200_000 {
		parallel = []int{4, 8} // the best on these machines; each try costs minutes
	}
	for _, p := range parallel {
		id, err := newStore(fmt.Sprintf("raw%d", p))
		if err != nil {
			return best, err
		}
		cc := withStore(c, id)
		cc.MaxTuplesPerWrite, cc.MaxParallelWrites = 100, p
		sink, err := openfga.New(ctx, cc)
		if err != nil {
			return best, err
		}
		before := fga.snapshot()
		start := time.Now()
		if _, err := sink.Apply(ctx, gsync.Changes{Adds: tuples}); err != nil {
			// More in flight than the server sustains: record, go on.
			log("raw writes   failed with %d in flight: %v", p, err)
			continue
		}
		wall := time.Since(start)
		after := fga.snapshot()
		log("raw writes   %8.2fs  with %d in flight", wall.Seconds(), p)
		if best.Wall == 0 || wall < best.Wall {
			best.Wall, best.FGAWrites, best.Added = wall, after[1]-before[1], len(tuples)
			best.Scenario = fmt.Sprintf("raw writes (%d in flight)", p)
		}
		if o.analyze != "" {
			_ = exec.Command("sh", "-c", o.analyze).Run()
		}
	}
	return best, nil
}

// naiveSync is the ad-hoc script: for every group, read its tuples, delete
// them one request each, then add the desired ones one request each. A
// first sync into an empty store is all adds. It stops after the budget
// and projects the rest at the rate it reached.
func naiveSync(ctx context.Context, o options, fga *counter, c config.OpenFGA, newStore func(string) (string, error), tuples []gsync.Tuple) (measurement, error) {
	m := measurement{Scenario: "naive sync"}
	id, err := newStore("naive")
	if err != nil {
		return m, err
	}
	cc := withStore(c, id)
	cc.MaxTuplesPerWrite, cc.MaxParallelWrites = 1, 1
	sink, err := openfga.New(ctx, cc)
	if err != nil {
		return m, err
	}
	byObject := map[string][]gsync.Tuple{}
	var objects []string
	for _, t := range tuples {
		if byObject[t.Object] == nil {
			objects = append(objects, t.Object)
		}
		byObject[t.Object] = append(byObject[t.Object], t)
	}
	before := fga.snapshot()
	start := time.Now()
	done := 0
	for _, obj := range objects {
		if time.Since(start) > o.naiveBudget {
			break
		}
		scope := gsync.Scope{ObjectType: "group", Relation: "member", UserTypes: []string{"user", "group#member"}, Objects: []string{obj}}
		existing, err := sink.Read(ctx, scope)
		if err != nil {
			return m, err
		}
		if _, err := sink.Apply(ctx, gsync.Changes{Deletes: existing}); err != nil {
			return m, err
		}
		if _, err := sink.Apply(ctx, gsync.Changes{Adds: byObject[obj]}); err != nil {
			return m, err
		}
		done += len(byObject[obj])
	}
	m.Wall = time.Since(start)
	after := fga.snapshot()
	m.FGAReads, m.FGAWrites, m.Added = after[0]-before[0], after[1]-before[1], done
	if done < len(tuples) && done > 0 {
		scale := float64(len(tuples)) / float64(done)
		m.Wall = time.Duration(float64(m.Wall) * scale)
		m.FGAReads = int64(math.Round(float64(m.FGAReads) * scale))
		m.FGAWrites = int64(math.Round(float64(m.FGAWrites) * scale))
		m.Projected = true
		m.Added = len(tuples)
	}
	return m, nil
}

// report writes BENCHMARKS.md's results part and the plot data.
func report(o options, ms []measurement) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d cores (%s), %s, %s/%s.\n\n", runtime.NumCPU(), cpuModel(), memTotal(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "Graph latency %s per request, throttling %v.\n", o.latency, map[bool]string{true: "on", false: "off"}[o.throttle])
	for _, name := range o.sizes {
		var rows []measurement
		for _, m := range ms {
			if m.Size == name {
				rows = append(rows, m)
			}
		}
		if len(rows) == 0 {
			continue
		}
		sz := sizes[name]
		fmt.Fprintf(&b, "\n### %s: %d users, %d groups, %d memberships, %d tuples managed\n\n", name, sz.Users, sz.Groups, rows[0].Memberships, rows[0].DesiredTuples)
		b.WriteString("| scenario | wall | Graph requests (batched items) | OpenFGA reads (+ other requests) | OpenFGA writes | tuples added | deleted | peak RSS | allocated |\n|---|---|---|---|---|---|---|---|---|\n")
		var events []measurement
		for _, m := range rows {
			if m.Changes > 0 {
				events = append(events, m)
				continue
			}
			wall := fmt.Sprintf("%.2f s", m.Wall.Seconds())
			if m.Projected {
				wall += " (projected)"
			}
			graph, rss, alloc := "–", "–", "–"
			if m.GraphRequests > 0 {
				graph = fmt.Sprintf("%d (%d)", m.GraphRequests, m.GraphItems)
			}
			if m.PeakRSSBytes > 0 {
				rss = fmt.Sprintf("%d MB", m.PeakRSSBytes>>20)
				alloc = fmt.Sprintf("%d MB in %dk allocs", m.TotalAllocBytes>>20, m.Mallocs/1000)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d (+%d) | %d | %d | %d | %s | %s |\n", m.Scenario, wall, graph, m.FGAReads, m.FGAOther, m.FGAWrites, m.Added, m.Deleted, rss, alloc)
		}
		if len(events) > 0 {
			b.WriteString("\nEvents (`groupsync daemon`, Graph change notifications over HTTP, each change a user joining a group): latency from the change in Graph to the tuple readable in OpenFGA, and requests per change.\n\n")
			b.WriteString("| rate | changes | p50 | p99 | missed | Graph requests / change | OpenFGA reads / change | OpenFGA writes / change |\n|---|---|---|---|---|---|---|---|\n")
			for _, m := range events {
				n := float64(m.Changes)
				fmt.Fprintf(&b, "| %s | %d | %d ms | %d ms | %d | %.1f | %.1f | %.1f |\n", strings.TrimPrefix(m.Scenario, "events, "), m.Changes,
					m.P50.Milliseconds(), m.P99.Milliseconds(), m.Missed, float64(m.GraphRequests)/n, float64(m.FGAReads)/n, float64(m.FGAWrites)/n)
			}
		}
		first, noop, read, raw, naive := find(rows, "first sync"), find(rows, "no change"), find(rows, "bare read"), find(rows, "raw writes"), find(rows, "naive sync")
		fmt.Fprintf(&b, "\nFirst sync / raw write ceiling: **%.2fx** (target ≤ 1.1). First sync / naive sync: **%.2fx**. No-change sync / bare read: **%.2fx** (target ≤ 1.2), with %d writes. Graph requests %d vs theoretical minimum %d: **%+.0f%%** (target ≤ +10%%). Peak RSS %d MB for %d memberships: **%.0f MB per 100k** (target ≤ 100).\n",
			ratio(first.Wall, raw.Wall), ratio(first.Wall, naive.Wall), ratio(noop.Wall, read.Wall), noop.FGAWrites,
			first.GraphRequests, first.GraphMinRequests, 100*(float64(first.GraphRequests)/float64(max(first.GraphMinRequests, 1))-1),
			first.PeakRSSBytes>>20, first.Memberships, float64(first.PeakRSSBytes>>20)/(float64(first.Memberships)/100_000))
	}
	if o.data != "" {
		var d strings.Builder
		d.WriteString("# memberships groupsync_first raw_writes naive noop bare_read noop_incremental first_rss_mb noop_rss_mb noop_incremental_rss_mb\n")
		for _, name := range o.sizes {
			var rows []measurement
			for _, m := range ms {
				if m.Size == name {
					rows = append(rows, m)
				}
			}
			if len(rows) == 0 {
				continue
			}
			inc := find(rows, "no change, incremental")
			fmt.Fprintf(&d, "%d %.3f %.3f %.3f %.3f %.3f %.3f %d %d %d\n", rows[0].DesiredTuples, find(rows, "first sync").Wall.Seconds(), find(rows, "raw writes").Wall.Seconds(),
				find(rows, "naive sync").Wall.Seconds(), find(rows, "no change").Wall.Seconds(), find(rows, "bare read").Wall.Seconds(),
				inc.Wall.Seconds(), find(rows, "first sync").PeakRSSBytes>>20, find(rows, "no change").PeakRSSBytes>>20, inc.PeakRSSBytes>>20)
		}
		if err := os.WriteFile(o.data, []byte(d.String()), 0o644); err != nil {
			return err
		}
	}
	if o.out == "" {
		_, err := os.Stdout.WriteString(b.String())
		return err
	}
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}

// deleteBehindTheBack deletes n tuples of the managed scope straight from
// OpenFGA, one from each of n groups, as a person with the CLI would.
func deleteBehindTheBack(ctx context.Context, fgaCfg config.OpenFGA, storeID string, scope gsync.Scope, n int) error {
	sink, err := openfga.New(ctx, withStore(fgaCfg, storeID))
	if err != nil {
		return err
	}
	tuples, err := sink.Read(ctx, scope)
	if err != nil {
		return err
	}
	var victims []gsync.Tuple
	seen := map[string]bool{}
	for _, t := range tuples {
		if len(victims) == n {
			break
		}
		if !seen[t.Object] {
			seen[t.Object] = true
			victims = append(victims, t)
		}
	}
	_, err = sink.Apply(ctx, gsync.Changes{Deletes: victims})
	return err
}

func find(ms []measurement, prefix string) measurement {
	for _, m := range ms {
		if strings.HasPrefix(m.Scenario, prefix) {
			return m
		}
	}
	return measurement{}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return fmt.Sprintf("%d GiB RAM", (kb+(1<<19))>>20)
		}
	}
	return "unknown RAM"
}

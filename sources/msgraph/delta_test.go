package msgraph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/state"
	gsync "github.com/groupsync/groupsync/sync"
)

// clock is a settable time for the state's ages.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// pair is an incremental source and a plain full-read source over the same
// server, with the mapping both are built for.
type pair struct {
	t       testing.TB
	srv     *graphtest.Server
	inc     *Source
	full    *Source
	store   state.Store
	mapping config.Mapping
	clock   *clock
	logs    *observer.ObservedLogs
}

func newPair(t testing.TB, srv *graphtest.Server, cfg config.MSGraph, m config.Mapping, store state.Store) *pair {
	t.Helper()
	p := &pair{t: t, srv: srv, store: store, mapping: m, clock: newClock()}
	core, logs := observer.New(zapcore.DebugLevel)
	p.logs = logs
	dcfg := cfg
	dcfg.Delta.Enabled = true
	var err error
	if p.inc, err = New(dcfg, WithMapping(m), WithStateStore(store), WithClock(p.clock.Now), WithLogger(zap.New(core))); err != nil {
		t.Fatal(err)
	}
	cfg.Delta.Enabled = false
	if p.full, err = New(cfg, WithMapping(m)); err != nil {
		t.Fatal(err)
	}
	return p
}

// read takes an incremental snapshot (committing it when commit is set) and
// a full one, and checks they are the same snapshot and map to the same
// tuples.
func (p *pair) read(commit bool) gsync.SourceRead {
	p.t.Helper()
	ctx := context.Background()
	got, err := p.inc.Snapshot(ctx)
	if err != nil {
		p.t.Fatalf("incremental snapshot: %v", err)
	}
	info := p.inc.LastRead()
	if commit {
		if err := p.inc.Commit(ctx); err != nil {
			p.t.Fatalf("commit: %v", err)
		}
	}
	want, err := p.full.Snapshot(ctx)
	if err != nil {
		p.t.Fatalf("full snapshot: %v", err)
	}
	p.compare(got, want, info)
	return info
}

func (p *pair) compare(got, want *gsync.Snapshot, info gsync.SourceRead) {
	p.t.Helper()
	tracked := p.inc.trackUsers()
	g, w := normalize(got, tracked), normalize(want, tracked)
	if !reflect.DeepEqual(g, w) {
		p.t.Fatalf("%s read (%s) differs from a full read:\n%s", info.Mode, info.Reason, diffSnapshots(g, w))
	}
	mapper, err := gsync.NewMapper(p.mapping)
	if err != nil {
		p.t.Fatal(err)
	}
	dg, err1 := mapper.Map(got)
	dw, err2 := mapper.Map(want)
	if err1 != nil || err2 != nil {
		p.t.Fatalf("map: %v %v", err1, err2)
	}
	if !slices.Equal(dg.Members.Tuples(), dw.Members.Tuples()) || !reflect.DeepEqual(dg.Skipped, dw.Skipped) {
		p.t.Fatalf("%s read maps to other tuples: %d vs %d", info.Mode, dg.Members.Len(), dw.Members.Len())
	}
}

// normalize sorts what a source may order as it likes; without user
// tracking only users' ids are compared (the mapping uses nothing else).
func normalize(s *gsync.Snapshot, tracked bool) *gsync.Snapshot {
	c := &gsync.Snapshot{}
	for _, g := range s.Groups {
		// By id, whichever form the source gave: a full read lists users
		// by id, the delta state's view by index.
		g.Users, g.UserIndexes = slices.Sorted(slices.Values(s.UserIDs(&g))), nil
		g.Groups = slices.Sorted(slices.Values(g.Groups))
		c.Groups = append(c.Groups, g)
	}
	for _, u := range s.Users {
		if !tracked {
			u = gsync.User{ID: u.ID}
		}
		c.Users = append(c.Users, u)
	}
	c.Skipped = slices.Clone(s.Skipped)
	slices.SortFunc(c.Skipped, func(a, b gsync.Skip) int {
		return strings.Compare(a.Kind+a.ID+a.Reason+a.Detail, b.Kind+b.ID+b.Reason+b.Detail)
	})
	return c
}

func diffSnapshots(g, w *gsync.Snapshot) string {
	var b strings.Builder
	gm, wm := map[string]gsync.Group{}, map[string]gsync.Group{}
	for _, x := range g.Groups {
		gm[x.ID] = x
	}
	for _, x := range w.Groups {
		wm[x.ID] = x
	}
	for id, x := range wm {
		if y, ok := gm[id]; !ok {
			fmt.Fprintf(&b, "  missing group %s %q\n", id, x.Name)
		} else if !reflect.DeepEqual(x, y) {
			fmt.Fprintf(&b, "  group %s:\n    got  %+v\n    want %+v\n", id, y, x)
		}
	}
	for id, y := range gm {
		if _, ok := wm[id]; !ok {
			fmt.Fprintf(&b, "  extra group %s %q\n", id, y.Name)
		}
	}
	if !reflect.DeepEqual(g.Users, w.Users) {
		um := map[string]gsync.User{}
		for _, u := range w.Users {
			um[u.ID] = u
		}
		for _, u := range g.Users {
			if want, ok := um[u.ID]; !ok {
				fmt.Fprintf(&b, "  extra user %+v\n", u)
			} else if !reflect.DeepEqual(u, want) {
				fmt.Fprintf(&b, "  user got %+v want %+v\n", u, want)
			}
			delete(um, u.ID)
		}
		for _, u := range um {
			fmt.Fprintf(&b, "  missing user %+v\n", u)
		}
	}
	if !reflect.DeepEqual(g.Skipped, w.Skipped) {
		fmt.Fprintf(&b, "  skipped:\n    got  %+v\n    want %+v\n", g.Skipped, w.Skipped)
	}
	return b.String()
}

func (p *pair) fellBack(want string) {
	p.t.Helper()
	info := p.inc.LastRead()
	if info.Mode != "full" || !strings.Contains(info.Reason, want) {
		p.t.Fatalf("want a full read because %q; got %+v", want, info)
	}
	if n := p.logs.FilterMessageSnippet("falling back to a full sync because ").FilterMessageSnippet(want).Len(); n == 0 {
		p.t.Fatalf("no log says why: %v", p.logs.All())
	}
}

func (p *pair) incremental() {
	p.t.Helper()
	if info := p.inc.LastRead(); info.Mode != "incremental" {
		p.t.Fatalf("want an incremental read; got %+v", info)
	}
}

const (
	u1, u2, u3, u4, u5 = "00000000-0000-0000-0000-0000000000u1", "00000000-0000-0000-0000-0000000000u2", "00000000-0000-0000-0000-0000000000u3", "00000000-0000-0000-0000-0000000000u4", "00000000-0000-0000-0000-0000000000u5"
	gA, gB, gC, gD     = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b", "00000000-0000-0000-0000-00000000000c", "00000000-0000-0000-0000-00000000000d"
	gE                 = "00000000-0000-0000-0000-00000000000e"
)

func TestDeltaFirstRunThenIncremental(t *testing.T) {
	srv := graphtest.New(t, fixture())
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	p.read(true)
	p.fellBack("there is no incremental state yet")

	srv.ResetStats()
	p.read(true)
	p.incremental()
	if st := srv.Stats(); st.GroupDeltaPages != 1 || st.UserDeltaPages != 1 || st.BatchPosts == 0 {
		// (the batch posts are the full source's)
		t.Fatalf("nothing changed: %+v", st)
	}
	if n := p.inc.LastRead().Requests; n != 2 {
		t.Fatalf("an incremental read with no change sent %d requests, want 2 (one per delta query)", n)
	}

	must(t, srv.Mutate(func(tn *graphtest.Tenant) {
		tn.Group(gA).Members = append(tn.Group(gA).Members, u3)                                                // add
		tn.Group(gB).Members = slices.DeleteFunc(tn.Group(gB).Members, func(m string) bool { return m == u2 }) // remove
		tn.Group(gC).DisplayName = "Infrastructure"                                                            // rename
		tn.Users[0].AccountEnabled = false                                                                     // disable u1
		tn.Users[3].UserPrincipalName = "u4-renamed@contoso.example"                                           // a user attribute
		tn.Groups = append(tn.Groups, graphtest.Group{ID: "00000000-0000-0000-0000-0000000000f1", DisplayName: "Fresh", SecurityEnabled: true,
			Members: []string{u5, gC}}) // create, with nesting
	}))
	srv.RemoveGroup(gD) // delete the Microsoft 365 group
	p.read(true)
	p.incremental()
	if c := p.inc.LastRead().Changes; c < 6 {
		t.Fatalf("changes %d", c)
	}
	// unnest, and a distribution list becomes a security group (its
	// members, never read, must be read now).
	must(t, srv.Mutate(func(tn *graphtest.Tenant) {
		tn.Group(gA).Members = slices.DeleteFunc(tn.Group(gA).Members, func(m string) bool { return m == gB })
		tn.Group(gE).SecurityEnabled = true
	}))
	srv.ResetStats()
	p.read(true)
	p.incremental()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeltaFallbacks(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*graphtest.Server, *pair) {
		srv := graphtest.New(t, fixture())
		p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
		p.read(true)
		p.read(true)
		p.incremental()
		return srv, p
	}
	t.Run("corrupt state", func(t *testing.T) {
		_, p := setup(t)
		data, _ := p.store.Load(ctx)
		data[len(data)/2] ^= 0xff
		p.store.Save(ctx, data)
		p.read(true)
		p.fellBack("is corrupt")
		p.store.Save(ctx, []byte("not a state at all"))
		p.read(true)
		p.fellBack("is corrupt")
	})
	t.Run("unreadable store", func(t *testing.T) {
		srv := graphtest.New(t, fixture())
		p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, failingStore{})
		p.read(false)
		p.fellBack("could not be read")
		if err := p.inc.Commit(ctx); err == nil || !strings.Contains(err.Error(), "failing store") {
			t.Fatalf("commit: %v", err)
		}
	})
	t.Run("expired links", func(t *testing.T) {
		_, p := setup(t)
		p.clock.Add(7 * 24 * time.Hour)
		p.inc.cfg.Delta.FullSyncEvery = 0
		p.read(true)
		p.fellBack("old and Graph keeps them for about 7 days")
	})
	t.Run("full_sync_every", func(t *testing.T) {
		_, p := setup(t)
		p.clock.Add(23 * time.Hour)
		p.read(true)
		p.incremental()
		p.clock.Add(time.Hour)
		p.read(true)
		p.fellBack("full_sync_every")
		p.clock.Add(time.Hour)
		p.read(true)
		p.incremental()
	})
	t.Run("settings changed", func(t *testing.T) {
		srv, p := setup(t)
		cfg := graphConfig(srv)
		cfg.Groups.Filter = "startswith(displayName,'E')"
		q := newPair(t, srv, cfg, config.Default().Mapping, p.store)
		q.read(true)
		q.fellBack("settings the incremental state was built with changed")
	})
	t.Run("Graph 400 syncStateNotFound", func(t *testing.T) {
		srv, p := setup(t)
		srv.ExpireDeltaTokens()
		srv.Mutate(func(tn *graphtest.Tenant) { tn.Group(gA).DisplayName = "Eng" })
		p.read(true)
		p.fellBack("Graph no longer accepts the groups delta link (HTTP 400 syncStateNotFound)")
		p.read(true)
		p.incremental()
	})
	t.Run("Graph 410 Gone", func(t *testing.T) {
		srv, p := setup(t)
		srv.ResetDelta()
		p.read(true)
		p.fellBack("HTTP 410 resyncRequired")
	})
	t.Run("Graph resyncRequired on users", func(t *testing.T) {
		srv, p := setup(t)
		srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
			if graphtest.EndpointOf(r) == graphtest.EndpointUsersDelta && strings.Contains(r.URL.RawQuery, "deltatoken=gtd1") {
				return &graphtest.Fault{Status: 400, Code: "resyncRequired", Message: "Resync required."}
			}
			return nil
		})
		p.read(true)
		p.fellBack("users delta link (HTTP 400 resyncRequired)")
	})
	t.Run("other errors fail the read", func(t *testing.T) {
		srv, p := setup(t)
		srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
			if graphtest.EndpointOf(r) == graphtest.EndpointGroupsDelta {
				return graphtest.StatusFault(403)
			}
			return nil
		})
		before, _ := p.store.Load(ctx)
		if _, err := p.inc.Snapshot(ctx); err == nil || !strings.Contains(err.Error(), "GroupMember.Read.All") {
			t.Fatalf("err %v", err)
		}
		if err := p.inc.Commit(ctx); err != nil {
			t.Fatal(err) // nothing pending: a no-op
		}
		if after, _ := p.store.Load(ctx); !slices.Equal(before, after) {
			t.Fatal("a failed read changed the state")
		}
	})
}

type failingStore struct{}

func (failingStore) Load(context.Context) ([]byte, error) {
	return nil, errors.New("failing store: boom")
}
func (failingStore) Save(context.Context, []byte) error { return errors.New("failing store: boom") }
func (failingStore) String() string                     { return "failing store" }

// A snapshot that is not committed (plan, a failed apply) leaves the state
// as it was: the next read covers the same changes again.
func TestDeltaUncommittedReadsAreRepeated(t *testing.T) {
	ctx := context.Background()
	srv := graphtest.New(t, fixture())
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	p.read(true)
	committed, _ := p.store.Load(ctx)
	srv.Mutate(func(tn *graphtest.Tenant) { tn.Group(gA).Members = append(tn.Group(gA).Members, u4) })
	for range 2 {
		p.read(false)
		p.incremental()
		if c := p.inc.LastRead().Changes; c != 1 {
			t.Fatalf("changes %d", c)
		}
		if now, _ := p.store.Load(ctx); !slices.Equal(now, committed) {
			t.Fatal("the state changed without Commit")
		}
	}
	p.read(true)
	p.read(true)
	if c := p.inc.LastRead().Changes; c != 0 {
		t.Fatalf("after commit: changes %d", c)
	}
}

// A read for a plan (gsync.WithoutCommit) keeps nothing to commit, in an
// incremental read and in a full one: a Commit after it saves nothing,
// and the next read starts from the committed state.
func TestDeltaPlanReadsKeepNothingPending(t *testing.T) {
	ctx := context.Background()
	srv := graphtest.New(t, fixture())
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	if _, err := p.inc.Snapshot(gsync.WithoutCommit(ctx)); err != nil || p.inc.LastRead().Mode != "full" {
		t.Fatalf("first read for a plan: %v, %+v", err, p.inc.LastRead())
	}
	must(t, p.inc.Commit(ctx))
	if data, _ := p.store.Load(ctx); data != nil {
		t.Fatal("a full read for a plan was committed")
	}
	p.read(true)
	committed, _ := p.store.Load(ctx)
	srv.Mutate(func(tn *graphtest.Tenant) { tn.Group(gA).Members = append(tn.Group(gA).Members, u4) })
	if _, err := p.inc.Snapshot(gsync.WithoutCommit(ctx)); err != nil || p.inc.LastRead().Mode != "incremental" {
		t.Fatalf("incremental read for a plan: %v, %+v", err, p.inc.LastRead())
	}
	must(t, p.inc.Commit(ctx))
	if now, _ := p.store.Load(ctx); !slices.Equal(now, committed) {
		t.Fatal("an incremental read for a plan was committed")
	}
	p.read(false)
	if c := p.inc.LastRead().Changes; c != 1 {
		t.Fatalf("the next read saw %d changes, want the 1 the plan's read did not keep", c)
	}
}

// Without User.Read.All the users delta is refused: users are ids only,
// as in a full read without that permission, and the tuples match.
func TestDeltaWithoutUserRead(t *testing.T) {
	srv := graphtest.New(t, fixture(), graphtest.WithPermissions("GroupMember.Read.All"))
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	p.read(true)
	if p.logs.FilterMessageSnippet("cannot track user changes").Len() == 0 {
		t.Fatal("no warning about User.Read.All")
	}
	srv.Mutate(func(tn *graphtest.Tenant) { tn.Group(gA).Members = append(tn.Group(gA).Members, u4) })
	p.read(true)
	p.incremental()
	if srv.Stats().UserDeltaPages != 1 { // only the refused latest request
		t.Fatalf("users delta pages %d", srv.Stats().UserDeltaPages)
	}
}

// With a Graph $filter, groups outside it are not tracked in full: one
// nested for the first time is read by id (name, then members).
func TestDeltaFilterReadsNewlyNestedGroups(t *testing.T) {
	srv := graphtest.New(t, fixture())
	cfg := graphConfig(srv)
	cfg.Groups.Filter = "startswith(displayName,'Eng')"
	p := newPair(t, srv, cfg, config.Default().Mapping, state.NewMemory())
	p.read(true)
	srv.Mutate(func(tn *graphtest.Tenant) {
		tn.Group(gC).Members = append(tn.Group(gC).Members, gD) // Sales, never read, nested under Infra
	})
	srv.ResetStats()
	p.read(true)
	p.incremental()
	// The full source's own reads are in the stats too; the incremental
	// read needed Sales' properties and members by id.
	if st := srv.Stats(); st.GroupGets == 0 {
		t.Fatalf("Sales was not read by id: %+v", st)
	}
	srv.Mutate(func(tn *graphtest.Tenant) { tn.Group(gA).DisplayName = "Sales and Engineering" }) // leaves the filter
	p.read(true)
	p.incremental()
	srv.Mutate(func(tn *graphtest.Tenant) { tn.Group(gD).DisplayName = "Engagement" }) // joins it
	p.read(true)
	p.incremental()
}

// Graph may send a changed object without its properties; the source reads
// it by id when it needs them.
func TestDeltaPartialObjectsAreReadByID(t *testing.T) {
	srv := graphtest.New(t, fixture())
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	p.read(true)
	ctx := context.Background()
	data, _ := p.store.Load(ctx)
	old, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	w := &stateWriter{s: p.inc, st: old.clone(), ownG: map[string]bool{}, ownU: map[string]bool{},
		goneGroups: map[string]bool{}, goneUsers: map[string]bool{}, staleUsers: map[string]bool{}}
	// A group Graph has never shown, without properties; and a user
	// without its UPN.
	srv.Mutate(func(tn *graphtest.Tenant) {
		tn.Groups = append(tn.Groups, graphtest.Group{ID: "00000000-0000-0000-0000-0000000000f2", DisplayName: "Quiet", SecurityEnabled: true, Members: []string{u2}})
		tn.Users[0].Mail = "changed@contoso.example"
	})
	g := newGroupModel("00000000-0000-0000-0000-0000000000f2")
	w.applyGroups(g)
	w.applyUsers(newUserModel(u1))
	srv.ResetStats()
	snap, err := w.resolveAndView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.GroupGets != 1 || st.UserGets != 1 || st.MemberPages != 1 {
		t.Fatalf("reads by id: %+v", st)
	}
	want, _ := p.full.Snapshot(ctx)
	p.compare(snap, want, gsync.SourceRead{Mode: "incremental"})
}

func newGroupModel(id string) []models.Groupable {
	g := models.NewGroup()
	g.SetId(&id)
	return []models.Groupable{g}
}

func newUserModel(id string) []models.Userable {
	u := models.NewUser()
	u.SetId(&id)
	return []models.Userable{u}
}

func TestDeltaCheck(t *testing.T) {
	srv := graphtest.New(t, fixture(), graphtest.WithPermissions("GroupMember.Read.All"))
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	results := map[string]gsync.CheckResult{}
	for _, r := range p.inc.Check(context.Background()) {
		results[r.What] = r
	}
	if r := results["Graph GET /groups/delta"]; r.Err != nil || r.Note != "allowed" {
		t.Fatalf("groups delta: %+v", r)
	}
	if r := results["Graph GET /users/delta"]; !strings.Contains(r.Warning, "User.Read.All") {
		t.Fatalf("users delta without User.Read.All: %+v", r)
	}
	if r := results["delta state in memory"]; r.Err != nil || !strings.Contains(r.Note, "none yet") {
		t.Fatalf("state: %+v (%v)", r, results)
	}
	p.read(true)
	for _, r := range p.inc.Check(context.Background()) {
		if r.What == "delta state in memory" && !strings.Contains(r.Note, "7 groups") {
			t.Fatalf("state after a commit: %+v", r)
		}
	}
	q := newPair(t, srv, graphConfig(srv), config.Default().Mapping, failingStore{})
	for _, r := range q.inc.Check(context.Background()) {
		if r.What == "delta state in failing store" && (r.Err == nil || !strings.Contains(r.Err.Error(), "source.msgraph.delta.state")) {
			t.Fatalf("unreadable store: %+v", r)
		}
	}
}

// Changes made while a read is under way (between the delta link and the
// group list, or between two delta pages) are caught by the next read;
// throttled delta pages are retried.
func TestDeltaChangesDuringARead(t *testing.T) {
	ctx := context.Background()
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 11, Users: 40, Groups: 12, MaxDepth: 2, MembersPerGroup: 6})
	srv := graphtest.New(t, tenant, graphtest.WithDelta(graphtest.DeltaOptions{ObjectsPerPage: 1, MembersPerPage: 2}))
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, state.NewMemory())
	var n int
	var mu sync.Mutex
	change := func(ep graphtest.Endpoint, at int) {
		srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
			if graphtest.EndpointOf(r) != ep {
				return nil
			}
			mu.Lock()
			n++
			hit := n == at
			mu.Unlock()
			if hit {
				go srv.Mutate(func(tn *graphtest.Tenant) { // Mutate waits for no request
					tn.Groups[3].Members = append(tn.Groups[3].Members, tn.Users[0].ID)
					tn.Groups[5].DisplayName += " x"
					tn.Users[1].AccountEnabled = !tn.Users[1].AccountEnabled
				})
				time.Sleep(50 * time.Millisecond)
			}
			return nil
		})
	}
	change(graphtest.EndpointGroups, 1) // during the full read
	if _, err := p.inc.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	must(t, p.inc.Commit(ctx))
	srv.SetFaultFunc(nil)
	p.read(true)
	p.incremental()

	srv.Mutate(func(tn *graphtest.Tenant) { tn.Groups[7].DisplayName += " y" })
	n = 0
	change(graphtest.EndpointGroupsDelta, 2) // between two delta pages
	if _, err := p.inc.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	must(t, p.inc.Commit(ctx))
	srv.SetFaultFunc(nil)
	p.read(true)
	p.incremental()

	srv.Mutate(func(tn *graphtest.Tenant) { tn.Groups[8].DisplayName += " z" })
	srv.FailNextWith(2, graphtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "0.05"})
	p.read(true)
	p.incremental()
	if p.inc.Stats().Throttled.Load() == 0 {
		t.Fatal("no throttling happened")
	}
}

package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// snapshotSource serves a snapshot the test edits between runs.
type snapshotSource struct{ snap *gsync.Snapshot }

func (s *snapshotSource) Snapshot(context.Context) (*gsync.Snapshot, error) { return s.snap, nil }

// wideModel accepts groupsync's tuples and others that must be left alone.
const wideModel = `model
  schema 1.1
type user
type bot
type doc
  relations
    define member: [user]
type group
  relations
    define member: [user, bot, group#member]
    define owner: [user]
type groupsync_instance
  relations
    define manages: [group]
    define lease: [groupsync_instance]
`

type env struct {
	t        *testing.T
	srv      *fgatest.Server
	storeID  string
	src      *snapshotSource
	mapping  config.Mapping
	fga      config.OpenFGA
	settings config.Sync // authoritative, no lease, no guards unless a test says otherwise
	force    bool
	// targetState, when set, is every engine's incremental state.
	targetState gsync.StateStore
}

func newEnv(t *testing.T, snap *gsync.Snapshot, edit func(*config.Mapping)) *env {
	t.Helper()
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "groupsync-test", wideModel)
	cfg := config.Default()
	cfg.OpenFGA.APIURL = srv.URL
	cfg.OpenFGA.StoreID = storeID
	cfg.OpenFGA.RetryMinWait = config.Duration(time.Millisecond)
	if edit != nil {
		edit(&cfg.Mapping)
	}
	return &env{t: t, srv: srv, storeID: storeID, src: &snapshotSource{snap}, mapping: cfg.Mapping, fga: cfg.OpenFGA,
		settings: config.Sync{Ownership: config.Ownership{Mode: config.OwnershipAuthoritative}}}
}

func (e *env) engine() *gsync.Engine {
	e.t.Helper()
	sink, err := openfga.New(context.Background(), e.fga)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := &config.Config{Mapping: e.mapping, OpenFGA: e.fga, Sync: e.settings}
	eng, err := gsync.New(cfg, e.src, openfga.NewTarget(sink), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	eng.Force = e.force
	eng.TargetState = e.targetState
	return eng
}

func (e *env) run(apply bool) *gsync.Report {
	e.t.Helper()
	rep, err := e.engine().Run(context.Background(), apply)
	if err != nil {
		e.t.Fatalf("run (apply=%v): %v", apply, err)
	}
	return rep
}

// desired is what the mapping wants for the current snapshot.
func (e *env) desired() []string {
	m, _ := gsync.NewMapper(e.mapping)
	d, err := m.Map(e.src.snap)
	if err != nil {
		e.t.Fatal(err)
	}
	return strs(d.Members.Tuples())
}

func (e *env) stored() []string { return strs(e.srv.Tuples(e.t, e.storeID)) }

// inScope is the stored tuples that groupsync manages.
func (e *env) inScope() []string {
	m, _ := gsync.NewMapper(e.mapping)
	var out []gsync.Tuple
	for _, t := range e.srv.Tuples(e.t, e.storeID) {
		if m.Scope().Contains(t) {
			out = append(out, t)
		}
	}
	return strs(out)
}

// assertConverged: the store holds exactly the desired tuples in scope
// (plus held ones, which groupsync must leave as they are), and another plan
// has nothing to do.
func (e *env) assertConverged(held ...string) {
	e.t.Helper()
	want := append(e.desired(), held...)
	slices.Sort(want)
	if got := e.inScope(); !slices.Equal(got, want) {
		e.t.Fatalf("store in scope:\n got  %q\n want %q", got, want)
	}
	if rep := e.run(false); rep.Pending() {
		e.t.Fatalf("converged store still plans changes: %+v", rep.Changes)
	}
}

// check asks OpenFGA itself whether user is related to object.
func (e *env) check(user, object string) bool {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"tuple_key": map[string]string{"user": user, "relation": "member", "object": object}})
	resp, err := http.Post(e.srv.URL+"/stores/"+e.storeID+"/check", "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Allowed bool }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("check %s %s: status %d, %v", user, object, resp.StatusCode, err)
	}
	return out.Allowed
}

func strs(ts []gsync.Tuple) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	slices.Sort(out)
	return out
}

func tenant() *gsync.Snapshot {
	return &gsync.Snapshot{
		Users: []gsync.User{{ID: "alice"}, {ID: "bob"}, {ID: "carol"}, {ID: "dave"}, {ID: "erin", Disabled: true}},
		Groups: []gsync.Group{
			{ID: "g1", Name: "eng", Users: []string{"alice"}, Groups: []string{"g2"}},
			{ID: "g2", Name: "platform", Users: []string{"bob", "erin"}, Groups: []string{"g3"}},
			{ID: "g3", Name: "infra", Users: []string{"carol"}},
			{ID: "g4", Name: "sales", Users: []string{"dave"}},
		},
	}
}

func TestFirstSyncThenNoop(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	plan := e.run(false)
	if !plan.Pending() || plan.Summary.ToAdd != len(e.desired()) || plan.Summary.ToDelete != 0 {
		t.Fatalf("first plan: %+v", plan.Summary)
	}
	if len(e.stored()) != 0 {
		t.Fatal("plan wrote to the store")
	}
	rep := e.run(true)
	if rep.Result == nil || rep.Result.Added != len(e.desired()) || len(rep.Result.Failed) != 0 {
		t.Fatalf("apply: %+v", rep.Result)
	}
	e.assertConverged()

	e.srv.ResetCounts()
	again := e.run(true)
	if again.Pending() || again.Result.Requests != 0 || e.srv.WriteRequests() != 0 {
		t.Fatalf("second apply wrote: %+v, %d write requests", again.Result, e.srv.WriteRequests())
	}
}

func TestAddsRemovesAndRename(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	e.run(true)

	snap := tenant()
	snap.Groups[3].Users = []string{"alice"} // sales: dave out, alice in
	snap.Groups[2].Users = nil               // infra: carol out (and so out of eng, platform)
	snap.Groups[0].Name = "engineering"      // rename eng
	e.src.snap = snap
	rep := e.run(true)
	var objects []string
	for _, c := range rep.Changes {
		objects = append(objects, c.Object)
	}
	if !slices.Equal(objects, []string{"group:eng", "group:engineering", "group:infra", "group:platform", "group:sales"}) {
		t.Fatalf("changed objects %q", objects)
	}
	e.assertConverged()
	if e.check("user:alice", "group:eng") || !e.check("user:alice", "group:engineering") || e.check("user:dave", "group:sales") {
		t.Fatal("OpenFGA disagrees with the sync")
	}
}

// Every nesting mode converges, and OpenFGA's own Check gives the same
// answers for flatten and userset: the userset graph is the flattened one.
func TestNestingModesAgreeUnderCheck(t *testing.T) {
	snap := tenant()
	snap.Groups[2].Groups = []string{"g1"} // infra ⊃ eng: a cycle eng → platform → infra → eng
	users := []string{"user:alice", "user:bob", "user:carol", "user:dave", "user:erin"}
	objects := []string{"group:eng", "group:platform", "group:infra", "group:sales"}
	answers := map[string]map[string]bool{}
	for _, mode := range []string{"flatten", "userset", "direct"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, snap, func(m *config.Mapping) { m.Nesting = mode })
			e.run(true)
			e.assertConverged()
			got := map[string]bool{}
			for _, u := range users {
				for _, o := range objects {
					got[u+" "+o] = e.check(u, o)
				}
			}
			answers[mode] = got
		})
	}
	for k, v := range answers["flatten"] {
		if answers["userset"][k] != v {
			t.Errorf("%s: flatten %v, userset %v", k, v, answers["userset"][k])
		}
	}
	if !answers["flatten"]["user:carol group:eng"] || answers["direct"]["user:carol group:eng"] || answers["flatten"]["user:erin group:platform"] {
		t.Errorf("unexpected membership: %v", answers)
	}
}

// Switching from userset to flatten removes the usersets it wrote.
func TestSwitchingNestingCleansUp(t *testing.T) {
	e := newEnv(t, tenant(), func(m *config.Mapping) { m.Nesting = "userset" })
	e.run(true)
	e.mapping.Nesting = "flatten"
	e.run(true)
	e.assertConverged()
	for _, s := range e.stored() {
		if strings.Contains(s, "#member") {
			t.Fatalf("userset left behind: %s", s)
		}
	}
}

func TestBadNamesAreSkippedNotWritten(t *testing.T) {
	snap := tenant()
	snap.Groups = append(snap.Groups,
		gsync.Group{ID: "b1", Name: "Sales Team", Users: []string{"alice"}},
		gsync.Group{ID: "b2", Name: "a#b", Users: []string{"alice"}},
		gsync.Group{ID: "b3", Name: "R&D: Labs", Users: []string{"alice"}},
		gsync.Group{ID: "b4", Name: strings.Repeat("n", 300), Users: []string{"alice"}},
		gsync.Group{ID: "d1", Name: "sales", Users: []string{"bob"}}, // same key as g4
	)
	e := newEnv(t, snap, nil)
	e.srv.WriteTuples(t, e.storeID, gsync.Tuple{User: "user:dave", Relation: "member", Object: "group:sales"})
	rep := e.run(true)
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[s.ID] = s.Reason
	}
	for id, want := range map[string]string{"b1": "invalid_object_id", "b2": "invalid_object_id", "b3": "invalid_object_id",
		"b4": "invalid_object_id", "d1": "duplicate_object_id", "g4": "duplicate_object_id"} {
		if reasons[id] != want {
			t.Errorf("group %s: reason %q, want %q", id, reasons[id], want)
		}
	}
	// The ambiguous group:sales keeps its existing tuple and gets nothing new.
	if !e.check("user:dave", "group:sales") || e.check("user:bob", "group:sales") {
		t.Fatal("duplicate group was merged or its tuples deleted")
	}
	if len(rep.Withheld) != 1 || rep.Withheld[0].Reason != "duplicate_object_id" {
		t.Fatalf("withheld %+v", rep.Withheld)
	}
	e.assertConverged("user:dave member group:sales")
}

func TestTuplesOutsideScopeAreUntouched(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	foreign := []gsync.Tuple{
		{User: "user:zed", Relation: "owner", Object: "group:eng"}, // other relation
		{User: "user:zed", Relation: "member", Object: "doc:plan"}, // other object type
		{User: "bot:ci", Relation: "member", Object: "group:eng"},  // other user type
		{User: "bot:ci", Relation: "member", Object: "group:gone"}, // other user type, unknown group
	}
	stale := gsync.Tuple{User: "user:zed", Relation: "member", Object: "group:gone"} // in scope, not in source
	e.srv.WriteTuples(t, e.storeID, append(slices.Clone(foreign), stale)...)
	rep := e.run(true)
	if rep.Summary.ToDelete != 1 || rep.Changes[slices.IndexFunc(rep.Changes, func(c gsync.GroupChange) bool { return c.Object == "group:gone" })].Delete[0] != "user:zed" {
		t.Fatalf("plan: %+v", rep.Changes)
	}
	stored := e.stored()
	for _, f := range foreign {
		if !slices.Contains(stored, f.String()) {
			t.Errorf("foreign tuple deleted: %s", f)
		}
	}
	if slices.Contains(stored, stale.String()) {
		t.Error("stale tuple in scope survived")
	}
	e.assertConverged()
}

// A write that fails midway leaves a partial store; the next run repairs it.
func TestFailedWriteMidwayThenRerunConverges(t *testing.T) {
	snap := &gsync.Snapshot{}
	for i := range 250 {
		id := "u" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		snap.Users = append(snap.Users, gsync.User{ID: id})
	}
	for g := range 3 {
		grp := gsync.Group{ID: "g" + string(rune('0'+g)), Name: "team" + string(rune('0'+g))}
		for _, u := range snap.Users {
			grp.Users = append(grp.Users, u.ID)
		}
		snap.Groups = append(snap.Groups, grp)
	}
	e := newEnv(t, snap, nil)
	e.fga.MaxRetries = 1
	e.fga.MaxParallelWrites = 1
	e.srv.SetFault(fgatest.FailRange(fgatest.Write, 3, 0, fgatest.Fault{Status: http.StatusInternalServerError}))
	rep, err := e.engine().Run(context.Background(), true)
	if err == nil || rep == nil || len(rep.Result.Failed) == 0 || rep.Result.Added == 0 {
		t.Fatalf("want a partial apply with an error: %v %+v", err, rep)
	}
	partial := len(e.inScope())
	if partial == 0 || partial == len(e.desired()) {
		t.Fatalf("store should be partial: %d of %d", partial, len(e.desired()))
	}
	e.srv.SetFault(nil)
	e.run(true)
	e.assertConverged()
}

// A failed add withholds deletes, so a rename never removes access before
// the new tuples exist.
func TestFailedAddsWithholdDeletes(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	e.run(true)
	snap := tenant()
	snap.Groups[3].Name = "revenue"
	e.src.snap = snap
	e.fga.MaxRetries = 0
	e.srv.SetFault(fgatest.FailRange(fgatest.Write, 1, 0, fgatest.Fault{Status: http.StatusServiceUnavailable}))
	rep, err := e.engine().Run(context.Background(), true)
	if err == nil || rep.Result.Deleted != 0 {
		t.Fatalf("deletes ran after failed adds: %v %+v", err, rep.Result)
	}
	if !e.check("user:dave", "group:sales") {
		t.Fatal("old membership removed although the new one was not written")
	}
	withheld := 0
	for _, w := range rep.Withheld {
		if w.Reason == gsync.ReasonAddsFailed {
			withheld++
		}
	}
	if withheld != 1 {
		t.Fatalf("withheld %+v", rep.Withheld)
	}
	e.srv.SetFault(nil)
	e.run(true)
	e.assertConverged()
}

func TestModelWithoutUsersetsStopsBeforeWriting(t *testing.T) {
	e := newEnv(t, tenant(), func(m *config.Mapping) { m.Nesting = "userset" })
	storeID, _ := e.srv.CreateStore(t, "narrow", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user]\n")
	e.fga.StoreID = storeID
	e.storeID = storeID
	_, err := e.engine().Run(context.Background(), true)
	if err == nil || !strings.Contains(err.Error(), "group#member") {
		t.Fatalf("want a model error naming group#member, got %v", err)
	}
	if len(e.stored()) != 0 {
		t.Fatal("wrote despite the model error")
	}
}

// A source error ends the run before anything is read or deleted.
func TestSourceErrorDeletesNothing(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	e.run(true)
	before := e.stored()
	eng := e.engine()
	eng.Source = failingSource{}
	if _, err := eng.Run(context.Background(), true); err == nil || !strings.Contains(err.Error(), "read source") {
		t.Fatalf("err %v", err)
	}
	if !slices.Equal(e.stored(), before) {
		t.Fatal("store changed after a source error")
	}
}

type failingSource struct{}

func (failingSource) Snapshot(context.Context) (*gsync.Snapshot, error) {
	return nil, context.DeadlineExceeded
}

// committingSource records whether each read may be committed.
type committingSource struct {
	snapshotSource
	willCommit []bool
}

func (s *committingSource) Snapshot(ctx context.Context) (*gsync.Snapshot, error) {
	s.willCommit = append(s.willCommit, gsync.WillCommit(ctx))
	return s.snap, nil
}

func (s *committingSource) Commit(context.Context) error { return nil }

// A plan's source read is marked as one that is never committed (an
// incremental source then keeps nothing pending); an apply's is not.
func TestPlanReadsAreMarkedWithoutCommit(t *testing.T) {
	e := newEnv(t, &gsync.Snapshot{Users: []gsync.User{{ID: "u1"}}, Groups: []gsync.Group{{ID: "g1", Name: "eng", Users: []string{"u1"}}}}, nil)
	src := &committingSource{snapshotSource: *e.src}
	eng := e.engine()
	eng.Source = src
	for _, apply := range []bool{false, true} {
		if _, err := eng.Run(context.Background(), apply); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(src.willCommit, []bool{false, true}) {
		t.Fatalf("WillCommit in the plan's and the apply's reads: %v, want [false true]", src.willCommit)
	}
}

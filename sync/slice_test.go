package sync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// runSlice is run for a slice: the env's snapshot, read as a SliceSource.
func (e *env) runSlice(s gsync.Slice, apply bool) (*gsync.Report, error) {
	e.t.Helper()
	eng := e.engine()
	eng.Source = &sliceSource{*e.src}
	return eng.RunSlice(context.Background(), s, apply)
}

func (e *env) mustRunSlice(s gsync.Slice, apply bool) *gsync.Report {
	e.t.Helper()
	rep, err := e.runSlice(s, apply)
	if err != nil {
		e.t.Fatalf("targeted run %+v (apply=%v): %v", s, apply, err)
	}
	return rep
}

func skippedWith(rep *gsync.Report, reason string) []string {
	var out []string
	for _, s := range rep.Skipped {
		if s.Reason == reason {
			out = append(out, s.Name)
		}
	}
	return out
}

// A targeted run's deletes pass the same guards as a full run's, and
// --force lets it past them; the empty-source guard does not apply to a
// slice, where a user in no group is a user who left.
func TestSliceGuards(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	e.run(true)
	snap := tenant()
	snap.Groups[0].Users, snap.Groups[0].Groups = nil, nil // eng loses alice, bob, carol
	e.src.snap = snap
	e.settings.Guards = config.Guards{MaxDeletes: 2}
	before := e.stored()

	for _, apply := range []bool{false, true} {
		rep, err := e.runSlice(gsync.Slice{Groups: []string{"eng"}}, apply)
		var guard *gsync.GuardError
		if !errors.As(err, &guard) || guard.Trip.Guard != gsync.GuardMaxDeletes || rep == nil || rep.Guard == nil {
			t.Fatalf("apply=%v: err %v, report %+v; want a max_deletes trip", apply, err, rep)
		}
		// An apply hands over the stopped plan, slice and all, for approval.
		if apply && (guard.Plan == nil || len(guard.Plan.Deletes) != 3 || guard.Plan.Slice == nil || !slices.Equal(guard.Plan.Slice.Groups, []string{"eng"})) {
			t.Fatalf("the stopped plan handed over: %+v", guard.Plan)
		}
	}
	if got := e.stored(); !slices.Equal(got, before) {
		t.Fatalf("a tripped targeted run wrote: %q", got)
	}
	e.force = true
	if rep := e.mustRunSlice(gsync.Slice{Groups: []string{"eng"}}, true); rep.Result.Deleted != 3 {
		t.Fatalf("forced: %+v", rep.Result)
	}
	e.force = false

	// dave leaves sales, his only group: the slice holds no membership at
	// all, which for a full run would be the empty-source guard's case.
	e.settings.Guards = config.Guards{MaxDeletes: 2}
	snap.Groups[3].Users = nil
	rep := e.mustRunSlice(gsync.Slice{Users: []string{"dave"}}, true)
	if rep.Result.Deleted != 1 || slices.Contains(e.stored(), "user:dave member group:sales") {
		t.Fatalf("dave's targeted run: %+v", rep.Result)
	}
}

// sync.policy add-only withholds a targeted run's deletes like a full
// run's.
func TestSliceAddOnly(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	e.run(true)
	snap := tenant()
	snap.Groups[3].Users = []string{"alice"} // sales: dave out, alice in
	e.src.snap = snap
	e.settings.Policy = config.PolicyAddOnly
	rep := e.mustRunSlice(gsync.Slice{Groups: []string{"g4"}}, true) // by id
	if rep.Result.Added != 1 || rep.Result.Deleted != 0 || len(rep.Withheld) != 1 || rep.Withheld[0].Reason != gsync.ReasonPolicyAddOnly ||
		rep.Withheld[0].Tuple.String() != "user:dave member group:sales" {
		t.Fatalf("add-only: result %+v, withheld %+v", rep.Result, rep.Withheld)
	}
	stored := e.stored()
	if !slices.Contains(stored, "user:alice member group:sales") || !slices.Contains(stored, "user:dave member group:sales") {
		t.Fatalf("store %q", stored)
	}
}

// In owned mode a targeted run changes only groups the registry already
// records: it claims nothing (the next full run does), releases nothing,
// and leaves tuples of groups it does not own alone.
func TestSliceOwnedNeverClaims(t *testing.T) {
	e := owned(newEnv(t, tenant(), nil), "entra")
	e.run(true)
	ownedBefore := e.owned()
	snap := tenant()
	snap.Groups = append(snap.Groups, gsync.Group{ID: "g5", Name: "ops", Users: []string{"alice"}})
	snap.Groups[3].Users = []string{"alice"} // sales: dave out, alice in
	e.src.snap = snap
	e.srv.WriteTuples(t, e.storeID, tup("user:alice", "group:unowned"), tup("user:alice", "group:ops"))

	rep := e.mustRunSlice(gsync.Slice{Users: []string{"alice"}}, true)
	if got := e.owned(); !slices.Equal(got, ownedBefore) {
		t.Fatalf("a targeted run changed the registry: %q, was %q", got, ownedBefore)
	}
	if len(rep.Ownership.Claims)+len(rep.Ownership.Releases) != 0 {
		t.Fatalf("claims %q, releases %q", rep.Ownership.Claims, rep.Ownership.Releases)
	}
	if got := skippedWith(rep, gsync.ReasonNotYetManaged); !slices.Equal(got, []string{"ops"}) {
		t.Fatalf("not_yet_managed: %q (skipped %+v)", got, rep.Skipped)
	}
	if rep.Result.Added != 1 || rep.Result.Deleted != 0 {
		t.Fatalf("result %+v, changes %+v", rep.Result, rep.Changes)
	}
	stored := e.stored()
	for _, want := range []string{"user:alice member group:sales", "user:alice member group:unowned", "user:alice member group:ops", "user:dave member group:sales"} {
		if !slices.Contains(stored, want) {
			t.Errorf("%s missing after the targeted run", want)
		}
	}
	// dave's own slice does remove him from sales, an owned group.
	e.mustRunSlice(gsync.Slice{Users: []string{"user:dave"}}, true)
	if slices.Contains(e.stored(), "user:dave member group:sales") {
		t.Error("dave's targeted run left him in sales")
	}
	// The next full run claims ops.
	if full := e.run(true); !slices.Equal(full.Ownership.Claims, []string{"group:ops"}) {
		t.Fatalf("full run claims %q", full.Ownership.Claims)
	}
}

// A source that cannot read slices is refused with a clear error, and so
// is an empty slice.
func TestSliceNeedsSliceSource(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	if _, err := e.engine().RunSlice(context.Background(), gsync.Slice{Users: []string{"alice"}}, false); err == nil ||
		!strings.Contains(err.Error(), "cannot read single users or groups") {
		t.Fatalf("err %v", err)
	}
	if _, err := e.runSlice(gsync.Slice{}, false); err == nil {
		t.Fatal("an empty slice ran")
	}
}

// The report says what was targeted, in JSON and in text.
func TestSliceReport(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	rep := e.mustRunSlice(gsync.Slice{Users: []string{"bob"}, Groups: []string{"infra"}}, false)
	if rep.Slice == nil || !slices.Equal(rep.Slice.UserIDs, []string{"user:bob"}) || !slices.Equal(rep.Slice.Objects, []string{"group:infra"}) {
		t.Fatalf("slice %+v", rep.Slice)
	}
	// bob is in platform and eng (flattened); infra has carol.
	adds, _ := changeTuples(rep)
	want := []string{"user:bob member group:eng", "user:bob member group:platform", "user:carol member group:infra"}
	if !slices.Equal(adds, want) {
		t.Fatalf("adds %q, want %q", adds, want)
	}
	var b bytes.Buffer
	if err := rep.Render(&b, "text"); err != nil || !strings.Contains(b.String(), "Targeted: users user:bob; groups group:infra.") {
		t.Fatalf("text report (%v):\n%s", err, b.String())
	}
	b.Reset()
	if err := rep.Render(&b, "json"); err != nil || !strings.Contains(b.String(), `"slice": {`) {
		t.Fatalf("json report (%v):\n%s", err, b.String())
	}
}

// appEnv's runSlice: the app's store, read as a SliceSource.
func (e *appEnv) runSlice(s gsync.Slice) *gsync.Report {
	e.t.Helper()
	sink, err := openfga.New(context.Background(), e.cfg.OpenFGA)
	if err != nil {
		e.t.Fatal(err)
	}
	target := openfga.NewTarget(sink)
	if st := e.cfg.Sync.Ownership.Store; st != "" {
		m, err := gsync.NewMapper(e.cfg.Mapping)
		if err != nil {
			e.t.Fatal(err)
		}
		target = openfga.NewTargetWithRegistryStore(sink, e.cfg.OpenFGA, st, e.cfg.Sync.Ownership.Type, m.OwnedTypes())
	}
	eng, err := gsync.New(&e.cfg, &sliceSource{*e.src}, target, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	rep, err := eng.RunSlice(context.Background(), s, true)
	if err != nil {
		e.t.Fatalf("targeted run %+v: %v", s, err)
	}
	return rep
}

// A group's slice plans the userset grants naming it, not other groups';
// a user's slice plans that user's {user} grants.
func TestSliceGrants(t *testing.T) {
	for _, mode := range []config.OwnershipMode{config.OwnershipOwned, config.OwnershipAuthoritative} {
		t.Run(string(mode), func(t *testing.T) {
			e := newAppEnv(t, teams(), fgatest.IncusLikeModel)
			e.cfg.Sync.Ownership.Mode = mode
			if mode == config.OwnershipOwned {
				e.cfg.Sync.Ownership.Store = "groupsync-registry"
			}
			e.cfg.Mapping.Grants = []config.GrantRule{teamProjects,
				{Name: "team-operators", Match: config.Match{Regex: "^team-(.+)$"}, Tuples: []string{"user:{user} operator project:{1}"}}}
			e.mustRun(true)
			red := gsync.Tuple{User: "group:team-red#member", Relation: "viewer", Object: "project:red"}
			blue := gsync.Tuple{User: "group:team-blue#member", Relation: "viewer", Object: "project:blue"}
			stray := gsync.Tuple{User: "group:team-red#member", Relation: "viewer", Object: "project:blue"}
			carol := gsync.Tuple{User: "user:carol", Relation: "operator", Object: "project:red"}
			carolBlue := gsync.Tuple{User: "user:carol", Relation: "operator", Object: "project:blue"}
			bob := gsync.Tuple{User: "user:bob", Relation: "operator", Object: "project:blue"}
			e.srv.DeleteTuples(t, e.storeID, red, blue, carol, bob)
			e.srv.WriteTuples(t, e.storeID, stray)
			if mode == config.OwnershipAuthoritative {
				e.srv.WriteTuples(t, e.storeID, carolBlue)
			}

			rep := e.runSlice(gsync.Slice{Groups: []string{"team-red"}})
			if !e.has(red.String()) || e.has(stray.String()) {
				t.Errorf("team-red's grants not reconciled: %+v", rep.Changes)
			}
			if e.has(blue.String()) || e.has(carol.String()) {
				t.Errorf("a group slice wrote another group's or a {user} grant: %+v", rep.Changes)
			}
			if len(rep.Slice.Notes) == 0 {
				t.Error("the report does not say {user} grants were left to the full run")
			}

			rep = e.runSlice(gsync.Slice{Users: []string{"carol"}})
			if !e.has(carol.String()) || e.has(blue.String()) || e.has(bob.String()) {
				t.Errorf("carol's slice: %+v", rep.Changes)
			}
			if mode == config.OwnershipAuthoritative && e.has(carolBlue.String()) {
				t.Errorf("carol's slice kept her stray grant: %+v", rep.Changes)
			}
		})
	}
}

// A name that cannot be an OpenFGA user resolves to nothing rather than
// to a read OpenFGA refuses.
func TestSliceInvalidName(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	rep := e.mustRunSlice(gsync.Slice{Users: []string{"no such user"}}, false)
	if len(rep.Slice.UserIDs) != 0 || rep.Pending() {
		t.Fatalf("slice %+v, changes %+v", rep.Slice, rep.Changes)
	}
}

// In owned mode a group's slice reads the ownership records of its own
// groups, not all of the instance's: at 10k groups those were a hundred
// read requests for every event.
func TestSliceReadsOnlyItsOwnershipRecords(t *testing.T) {
	snap := &gsync.Snapshot{}
	for u := range 5 {
		snap.Users = append(snap.Users, gsync.User{ID: fmt.Sprintf("u%d", u)})
	}
	for g := range 450 {
		snap.Groups = append(snap.Groups, gsync.Group{ID: fmt.Sprintf("gid-%03d", g), Name: fmt.Sprintf("g%03d", g), Users: []string{fmt.Sprintf("u%d", g%5)}})
	}
	e := newEnv(t, snap, nil)
	e.settings = config.Sync{Ownership: config.Ownership{Mode: config.OwnershipOwned, Instance: "events", Type: "groupsync_instance"}}
	e.run(true) // claims the 450 groups: five pages of records
	snap.Groups[7].Users = append(snap.Groups[7].Users, "u4")
	e.srv.ResetCounts()
	rep := e.mustRunSlice(gsync.Slice{Groups: []string{"g007"}}, true)
	if rep.Summary.ToAdd != 1 || rep.Summary.ToDelete != 0 {
		t.Fatalf("the slice planned %+v", rep.Summary)
	}
	// The group's tuples, its ownership record, and the registry's own
	// checks; before, every record of the instance (5 pages) on top.
	if n := e.srv.Requests(fgatest.Read); n > 3 {
		t.Errorf("%d read requests for a one-group slice", n)
	}
	// A group another instance manages is still left alone.
	e.srv.WriteTuples(t, e.storeID, gsync.Tuple{User: "group:g008", Relation: "manages", Object: "groupsync_instance:other"})
	e.srv.DeleteTuples(t, e.storeID, gsync.Tuple{User: "group:g008", Relation: "manages", Object: "groupsync_instance:events"})
	snap.Groups[8].Users = nil
	rep = e.mustRunSlice(gsync.Slice{Groups: []string{"g008"}}, true)
	if rep.Summary.ToDelete != 0 || len(skippedWith(rep, gsync.ReasonOwnedByOther)) != 1 {
		t.Fatalf("a group of another instance: %+v, skipped %+v", rep.Summary, rep.Skipped)
	}
	// A user's slice: the user's tuple on a group of this instance goes
	// (the source no longer lists them), the one on the other instance's
	// group stays.
	mine := gsync.Tuple{User: "user:u9", Relation: "member", Object: "group:g009"}
	theirs := gsync.Tuple{User: "user:u9", Relation: "member", Object: "group:g008"}
	e.srv.WriteTuples(t, e.storeID, mine, theirs)
	rep = e.mustRunSlice(gsync.Slice{Users: []string{"u9"}}, true)
	stored := e.stored()
	if slices.Contains(stored, mine.String()) || !slices.Contains(stored, theirs.String()) || rep.Summary.ToDelete != 1 {
		t.Fatalf("u9's slice: %+v, changes %+v", rep.Summary, rep.Changes)
	}
}

package sync_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

var sliceCases = flag.Int("slice.cases", 0, "tenants for TestSliceMatchesFullPlan (0: 600; 150 under -race; a fifth with -short)")

// sliceSource is a snapshotSource that also reads slices, cut from its
// snapshot as a source holding the whole tenant would.
type sliceSource struct{ snapshotSource }

func (s *sliceSource) SnapshotSlice(_ context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	return gsync.SliceSnapshot(s.snap, sl), nil
}

// TestSliceMatchesFullPlan is issue 13's acceptance: across random tenants
// (nesting with cycles, disabled users, filtered groups), every nesting
// mode and the owned and authoritative ownership modes, starting from a
// store that differs from the source both ways, a targeted run for a user,
// a group or both plans exactly the full plan's changes of that user's tuples
// or that group's object (less the groups a full run would claim first),
// and applying it writes those changes and nothing else.
func TestSliceMatchesFullPlan(t *testing.T) {
	n := *sliceCases
	if n == 0 {
		n = 600
		if raceEnabled {
			n = 150
		}
		if testing.Short() {
			n /= 5
		}
	}
	srv := fgatest.New(t)
	nestings := []string{"flatten", "userset", "direct"}
	modes := []config.OwnershipMode{config.OwnershipAuthoritative, config.OwnershipOwned}
	var users, groups, changes int
	for i := range n {
		nesting, mode := nestings[i%3], modes[(i/3)%2]
		r := rand.New(rand.NewPCG(uint64(i), 0x511ce))
		kind, changed := sliceCase(t, srv, i, nesting, mode, r)
		if strings.Contains(kind, "user") {
			users++
		}
		if strings.Contains(kind, "group") {
			groups++
		}
		changes += changed
		if t.Failed() {
			t.Fatalf("case %d (nesting %s, ownership %s) failed; rerun with -run TestSliceMatchesFullPlan -slice.cases %d", i, nesting, mode, i+1)
		}
	}
	t.Logf("%d cases: %d user slices, %d group slices, %d changes planned", n, users, groups, changes)
	if changes == 0 || users == 0 || groups == 0 {
		t.Fatal("the generator planned no changes, or never targeted users or groups")
	}
}

// randomTenant builds users id-<n> (key u<n>, some disabled) and groups
// gid-<n> named g<n> (some x-g<n>, excluded by the mapping), with random
// memberships and random nesting, self-membership and cycles included.
func randomTenant(r *rand.Rand) *gsync.Snapshot {
	snap := &gsync.Snapshot{}
	nu, ng := 2+r.IntN(7), 1+r.IntN(7)
	for u := range nu {
		snap.Users = append(snap.Users, gsync.User{ID: fmt.Sprintf("id-%d", u), UPN: fmt.Sprintf("u%d", u), Disabled: r.IntN(8) == 0})
	}
	for g := range ng {
		name := fmt.Sprintf("g%d", g)
		if r.IntN(7) == 0 {
			name = "x-" + name
		}
		grp := gsync.Group{ID: fmt.Sprintf("gid-%d", g), Name: name}
		for u := range nu {
			if r.IntN(3) == 0 {
				grp.Users = append(grp.Users, fmt.Sprintf("id-%d", u))
			}
		}
		for h := range ng {
			if r.IntN(5) == 0 {
				grp.Groups = append(grp.Groups, fmt.Sprintf("gid-%d", h))
			}
		}
		snap.Groups = append(snap.Groups, grp)
	}
	return snap
}

var sliceClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

func sliceCase(t *testing.T, srv *fgatest.Server, i int, nesting string, mode config.OwnershipMode, r *rand.Rand) (kind string, changed int) {
	t.Helper()
	storeID, _ := srv.CreateStore(t, fmt.Sprintf("slice-%d", i), wideModel)
	cfg := config.Default()
	cfg.OpenFGA.APIURL, cfg.OpenFGA.StoreID = srv.URL, storeID
	cfg.Mapping.Nesting = nesting
	cfg.Mapping.User.Key = "upn"
	cfg.Mapping.Filters.Exclude = []config.Match{{Glob: "x-*"}}
	tenant := randomTenant(r)
	src := &sliceSource{snapshotSource{tenant}}
	e := &env{t: t, srv: srv, storeID: storeID, src: &src.snapshotSource, mapping: cfg.Mapping, fga: cfg.OpenFGA,
		settings: config.Sync{Ownership: config.Ownership{Mode: mode, Instance: "slice", Type: "groupsync_instance"},
			Guards: config.Guards{AllowEmptySource: true}}}
	engine := func() *gsync.Engine {
		// One transport for every case: thousands of cases must not use
		// thousands of connections.
		sink, err := openfga.New(context.Background(), e.fga, openfga.WithHTTPClient(sliceClient))
		if err != nil {
			t.Fatal(err)
		}
		eng, err := gsync.New(&config.Config{Mapping: e.mapping, OpenFGA: e.fga, Sync: e.settings}, src, openfga.NewTarget(sink), nil)
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}

	// The target, and what it resolves to.
	var slice gsync.Slice
	var user, object string
	pick := r.IntN(5) // 0, 1: a user; 2, 3: a group; 4: both
	if pick != 2 && pick != 3 {
		kind = "user"
		u := tenant.Users[r.IntN(len(tenant.Users))]
		user = "user:" + u.UPN
		switch r.IntN(4) {
		case 0:
			slice.Users = []string{u.ID}
		case 1:
			slice.Users = []string{user}
		case 2:
			slice.Users = []string{u.UPN}
		default:
			slice.Users, user = []string{"ghost-user"}, "user:ghost-user" // a user the source does not have
		}
	}
	if pick >= 2 {
		kind += "group"
		g := tenant.Groups[r.IntN(len(tenant.Groups))]
		object = "group:" + g.Name
		switch r.IntN(4) {
		case 0, 1:
			slice.Groups = []string{g.Name}
		case 2:
			slice.Groups = []string{g.ID}
		default:
			slice.Groups, object = []string{"ghost"}, "group:ghost" // a group the source does not have
		}
	}

	// The store: in owned mode, what a full run of an earlier tenant (some
	// groups missing, a ghost group since deleted) claimed and wrote.
	objects := []string{"group:ghost", "group:stray"}
	for _, g := range tenant.Groups {
		objects = append(objects, "group:"+g.Name)
	}
	if mode == config.OwnershipOwned {
		before := *tenant
		before.Groups = slices.DeleteFunc(slices.Clone(tenant.Groups), func(gsync.Group) bool { return r.IntN(4) == 0 })
		ghost := gsync.Group{ID: "gid-ghost", Name: "ghost"}
		for _, u := range tenant.Users {
			if r.IntN(2) == 0 {
				ghost.Users = append(ghost.Users, u.ID)
			}
		}
		before.Groups = append(before.Groups, ghost)
		e.src.snap = &before
		if _, err := engine().Run(context.Background(), true); err != nil {
			t.Fatalf("case %d: earlier full run: %v", i, err)
		}
		e.src.snap = tenant
	}
	// ... then OpenFGA drifts from the source both ways.
	var write, del []gsync.Tuple
	for _, d := range e.desired() {
		f := strings.Fields(d)
		tu := gsync.Tuple{User: f[0], Relation: f[1], Object: f[2]}
		if r.IntN(3) > 0 {
			write = append(write, tu)
		}
	}
	for _, s := range e.stored() {
		f := strings.Fields(s)
		if f[1] == "member" && r.IntN(4) == 0 {
			del = append(del, gsync.Tuple{User: f[0], Relation: f[1], Object: f[2]})
		}
	}
	randomUser := func() string {
		switch r.IntN(5) {
		case 0:
			return "user:stranger"
		case 1:
			return objects[r.IntN(len(objects))] + "#member"
		case 2:
			if user != "" {
				return user
			}
		}
		return "user:" + tenant.Users[r.IntN(len(tenant.Users))].UPN
	}
	for range 2 + r.IntN(8) {
		obj := objects[r.IntN(len(objects))]
		if object != "" && r.IntN(3) == 0 {
			obj = object
		}
		if u := randomUser(); u != obj+"#member" { // OpenFGA refuses a group as its own member
			write = append(write, gsync.Tuple{User: u, Relation: "member", Object: obj})
		}
	}
	// Tuples outside the scope: never groupsync's.
	write = append(write,
		gsync.Tuple{User: "user:u0", Relation: "owner", Object: objects[r.IntN(len(objects))]},
		gsync.Tuple{User: "bot:b", Relation: "member", Object: objects[r.IntN(len(objects))]},
		gsync.Tuple{User: "user:u0", Relation: "member", Object: "doc:d"})
	if len(del) > 0 {
		srv.DeleteTuples(t, storeID, del...)
	}
	stored := setOfStrings(e.stored())
	write = slices.DeleteFunc(dedupe(write), func(tu gsync.Tuple) bool { return stored[tu.String()] })
	if len(write) > 0 {
		srv.WriteTuples(t, storeID, write...)
	}

	full, err := engine().Run(context.Background(), false)
	if err != nil {
		t.Fatalf("case %d: full plan: %v", i, err)
	}
	claimed := setOfStrings(full.Ownership.Claims)
	fullAdds, fullDeletes := changeTuples(full)
	keep := func(ts []string) []string {
		return slices.DeleteFunc(ts, func(s string) bool {
			f := strings.Fields(s)
			return claimed[f[2]] || f[0] != user && f[2] != object
		})
	}
	wantAdds, wantDeletes := keep(fullAdds), keep(fullDeletes)

	plan, err := engine().RunSlice(context.Background(), slice, false)
	if err != nil {
		t.Fatalf("case %d: targeted plan %+v: %v", i, slice, err)
	}
	adds, deletes := changeTuples(plan)
	if !slices.Equal(adds, wantAdds) || !slices.Equal(deletes, wantDeletes) {
		t.Errorf("case %d (%s, %s) slice %+v:\n adds    %q\n want    %q\n deletes %q\n want    %q\n tenant %+v",
			i, nesting, mode, slice, adds, wantAdds, deletes, wantDeletes, *tenant)
		return kind, 0
	}
	if plan.Slice == nil || user != "" && !slices.Equal(plan.Slice.UserIDs, []string{user}) || object != "" && !slices.Equal(plan.Slice.Objects, []string{object}) {
		t.Errorf("case %d: slice %+v resolved to %+v", i, slice, plan.Slice)
	}

	before := e.stored()
	if _, err := engine().RunSlice(context.Background(), slice, true); err != nil {
		t.Fatalf("case %d: targeted apply: %v", i, err)
	}
	want := slices.DeleteFunc(append(before, adds...), func(s string) bool { return slices.Contains(deletes, s) })
	slices.Sort(want)
	if got := e.stored(); !slices.Equal(got, want) {
		t.Errorf("case %d: the targeted apply wrote more or less than its plan:\n got  %q\n want %q", i, got, want)
	}
	if again, err := engine().RunSlice(context.Background(), slice, false); err != nil || again.Pending() {
		t.Errorf("case %d: the slice still plans changes after its apply (%v): %+v", i, err, again.Changes)
	}
	return kind, len(adds) + len(deletes)
}

// changeTuples lists a report's adds and deletes as sorted tuple strings.
func changeTuples(rep *gsync.Report) (adds, deletes []string) {
	for _, c := range rep.Changes {
		rel := c.Relation
		if rel == "" {
			rel = rep.Scope.Relation
		}
		for _, u := range c.Add {
			adds = append(adds, u+" "+rel+" "+c.Object)
		}
		for _, u := range c.Delete {
			deletes = append(deletes, u+" "+rel+" "+c.Object)
		}
	}
	slices.Sort(adds)
	slices.Sort(deletes)
	return nonNilStrings(adds), nonNilStrings(deletes)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func setOfStrings(s []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}

func dedupe(ts []gsync.Tuple) []gsync.Tuple {
	gsync.SortTuples(ts)
	return slices.Compact(ts)
}

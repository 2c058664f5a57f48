package msgraph

import (
	"context"
	"flag"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/state"
)

var deltaLarge = flag.Bool("delta.large", false, "run TestDeltaLargeTenantRequests: full and incremental reads of the 100k-user tenant through the SDK (a few minutes)")

// largeTenant is the benchmarks' largest tenant: 100k users, 10k groups,
// ~1M direct memberships.
func largeTenant() *graphtest.Tenant {
	return graphtest.Generate(graphtest.GenOptions{Seed: 1, Users: 100_000, Groups: 10_000, MaxDepth: 4, MembersPerGroup: 90,
		GuestFraction: 0.05, DisabledFraction: 0.03, Devices: 2000, DuplicateNames: 50, Cycles: 5})
}

// stateFromTenant is the state of a tenant with every group's members
// known and every member user tracked: an upper bound of what a full read
// keeps (which leaves out the members of groups it does not read).
func stateFromTenant(tn *graphtest.Tenant) *deltaState {
	kind := map[string]string{}
	for _, u := range tn.Users {
		kind[u.ID] = "user"
	}
	for _, g := range tn.Groups {
		kind[g.ID] = "group"
	}
	for _, d := range tn.Devices {
		kind[d.ID] = "device"
	}
	for _, o := range tn.ServicePrincipals {
		kind[o.ID] = "servicePrincipal"
	}
	for _, o := range tn.OrgContacts {
		kind[o.ID] = "orgContact"
	}
	now := time.Now()
	st := &deltaState{fingerprint: strings.Repeat("f", 32), usersTracked: true, fullAt: now, linkAt: now,
		groupsLink: "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=" + strings.Repeat("x", 200),
		usersLink:  "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=" + strings.Repeat("y", 200),
		groups:     map[string]*groupRec{}, users: map[string]*userRec{}}
	used := map[string]bool{}
	for _, g := range tn.Groups {
		p := groupProps{name: g.DisplayName, security: g.SecurityEnabled, mail: g.MailEnabled, unified: slices.Contains(g.GroupTypes, "Unified"),
			dynamic: slices.Contains(g.GroupTypes, "DynamicMembership"), roleAssignable: g.IsAssignableToRole}
		rec := &groupRec{name: g.DisplayName, flags: flagsOf(p) | gComplete}
		var users []string
		for _, m := range g.Members {
			switch kind[m] {
			case "user":
				users = append(users, m)
				used[m] = true
			case "group":
				rec.groups = append(rec.groups, m)
			default:
				rec.others = append(rec.others, otherRef{id: m, kind: kind[m]})
			}
		}
		rec.users = st.ids.internAll(users)
		slices.Sort(rec.groups)
		slices.SortFunc(rec.others, func(a, b otherRef) int { return strings.Compare(a.id, b.id) })
		st.groups[g.ID] = rec
	}
	for _, u := range tn.Users {
		if !used[u.ID] {
			continue
		}
		rec := &userRec{upn: u.UserPrincipalName, mail: u.Mail, flags: uEnabledKnown}
		if u.AccountEnabled {
			rec.flags |= uEnabled
		}
		if u.UserType == "Guest" {
			rec.flags |= uGuest
		}
		st.users[u.ID] = rec
	}
	return st
}

func objectsFor(n int) int {
	return (n + state.MaxObjectBytes - 64<<10 - 1) / (state.MaxObjectBytes - 64<<10)
}

// The largest tenant's state, against Kubernetes' 1 MiB per object: it is
// split, and fits the eight objects the documented Role names.
func TestDeltaStateSizeLargeTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("generates the 100k-user tenant")
	}
	tn := largeTenant()
	st := stateFromTenant(tn)
	memberships := 0
	for _, g := range st.groups {
		memberships += len(g.users) + len(g.groups) + len(g.others)
	}
	start := time.Now()
	data, err := st.encode()
	if err != nil {
		t.Fatal(err)
	}
	enc := time.Since(start)
	start = time.Now()
	back, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	dec := time.Since(start)
	if !sameState(back, st) || back.groupsLink != st.groupsLink {
		t.Fatal("the state does not survive encoding")
	}
	objects := objectsFor(len(data))
	t.Logf("state of %d groups, %d users, %d memberships: %d bytes (%.1f bytes a membership), %d Kubernetes objects of at most 1 MiB; encode %s, decode %s",
		len(st.groups), len(st.users), memberships, len(data), float64(len(data))/float64(memberships), objects, enc.Round(time.Millisecond), dec.Round(time.Millisecond))
	if objects > 8 {
		t.Fatalf("the state needs %d objects; docs/entra.md's Role names 8", objects)
	}
}

// The encoding survives any damage as an error, never a panic or a wrong
// state that decodes.
func TestDeltaStateDamage(t *testing.T) {
	tn := graphtest.Generate(graphtest.GenOptions{Seed: 5, Users: 200, Groups: 40, MaxDepth: 2, Devices: 5})
	st := stateFromTenant(tn)
	st.users[tn.Users[0].ID].attrs = map[string]string{"employeeId": "E1"}
	st.groups["not-a-guid"] = &groupRec{name: "odd id", flags: gKnown}
	data, err := st.encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeState(data)
	if err != nil || !sameState(back, st) {
		t.Fatalf("round trip: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		d := slices.Clone(data)
		switch r.IntN(3) {
		case 0:
			d[r.IntN(len(d))] ^= byte(1 + r.IntN(255))
		case 1:
			d = d[:r.IntN(len(d))]
		default:
			i := r.IntN(len(d))
			d = append(d[:i], d[i+1:]...)
		}
		// Damage where gzip keeps no data (its header's time and OS bytes)
		// may decode, but only to the same state.
		if got, err := decodeState(d); err == nil && (!sameState(got, st) ||
			got.groupsLink != st.groupsLink || got.usersLink != st.usersLink || !got.fullAt.Equal(st.fullAt) || !got.linkAt.Equal(st.linkAt)) {
			t.Fatalf("a damaged state decoded to a different one")
		}
	}
}

// TestDeltaLargeTenantRequests measures full and incremental reads of the
// 100k-user tenant through the real SDK: requests and time, and the size of
// the state a full read keeps. Run with -delta.large.
func TestDeltaLargeTenantRequests(t *testing.T) {
	if !*deltaLarge {
		t.Skip("run with -delta.large")
	}
	ctx := context.Background()
	tn := largeTenant()
	srv := graphtest.New(t, tn)
	cfg := graphConfig(srv)
	cfg.MaxRetryWait = config.Duration(time.Minute)
	store := state.NewMemory()
	p := newPair(t, srv, cfg, config.Default().Mapping, store)
	measure := func(label string, fn func()) {
		srv.ResetStats()
		before := p.inc.Stats().Requests.Load()
		start := time.Now()
		fn()
		st := srv.Stats()
		t.Logf("%-34s %8s  %5d HTTP requests (%5d member reads in $batch, %3d delta pages, %4d reads by id)",
			label, time.Since(start).Round(10*time.Millisecond), p.inc.Stats().Requests.Load()-before, st.MemberPages,
			st.GroupDeltaPages+st.UserDeltaPages, st.GroupGets+st.UserGets)
	}
	incremental := func() {
		if _, err := p.inc.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.inc.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	measure("first run (full, delta on)", incremental)
	data, _ := store.Load(ctx)
	t.Logf("state after the full read: %d bytes, %d Kubernetes objects", len(data), objectsFor(len(data)))
	measure("no change (incremental)", incremental)

	must(t, srv.Mutate(func(tn *graphtest.Tenant) { tn.MoveMemberships(0.01, 7) }))
	measure("1% of memberships moved (incr.)", incremental)
	if got := p.inc.LastRead(); got.Mode != "incremental" {
		t.Fatalf("%+v", got)
	}
	must(t, srv.Mutate(func(tn *graphtest.Tenant) {
		r := rand.New(rand.NewPCG(9, 9))
		for range len(tn.Users) / 100 {
			u := &tn.Users[r.IntN(len(tn.Users))]
			u.AccountEnabled = !u.AccountEnabled
		}
	}))
	measure("1% of users disabled (incr.)", incremental)

	// The same tenant read in full, as without delta, and compared.
	full := p.full
	srv.ResetStats()
	start := time.Now()
	want, err := full.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%-34s %8s  %5d HTTP requests (%5d member reads in $batch)", "full read (delta off)", time.Since(start).Round(10*time.Millisecond),
		full.Stats().Requests.Load(), srv.Stats().MemberPages)
	must(t, srv.Mutate(func(tn *graphtest.Tenant) { tn.Groups[100].DisplayName += " renamed" }))
	got, err := p.inc.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ = full.Snapshot(ctx)
	p.compare(got, want, p.inc.LastRead())
}

// groupView is a group record with its users by id.
type groupView struct {
	name          string
	flags         groupFlags
	users, groups []string
	others        []otherRef
}

// sameState reports whether a and b hold the same groups and users,
// whatever the order of their id tables.
func sameState(a, b *deltaState) bool {
	view := func(st *deltaState) map[string]groupView {
		out := make(map[string]groupView, len(st.groups))
		for id, g := range st.groups {
			users := st.memberIDs(g)
			slices.Sort(users)
			if len(users) == 0 {
				users = nil
			}
			out[id] = groupView{name: g.name, flags: g.flags, users: users, groups: g.groups, others: g.others}
		}
		return out
	}
	return reflect.DeepEqual(view(a), view(b)) && reflect.DeepEqual(a.users, b.users)
}

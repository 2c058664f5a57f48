package sync_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	gsync "github.com/groupsync/groupsync/sync"
)

// owned turns an env into ownership mode "owned" for instance name.
func owned(e *env, name string) *env {
	e.settings = config.Default().Sync
	e.settings.Ownership.Instance = name
	e.settings.Lease.Enabled = false
	return e
}

// sibling is a second instance on the same store.
func sibling(e *env, name string, snap *gsync.Snapshot) *env {
	s := *e
	s.src = &snapshotSource{snap}
	return owned(&s, name)
}

func (e *env) owned() []string {
	e.t.Helper()
	sink, err := openfga.New(context.Background(), e.fga)
	if err != nil {
		e.t.Fatal(err)
	}
	got, err := openfga.NewRegistry(sink, e.settings.Ownership, "group").Owned(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func tup(u, o string) gsync.Tuple { return gsync.Tuple{User: u, Relation: "member", Object: o} }

func TestTwoInstancesShareAStore(t *testing.T) {
	entra := owned(newEnv(t, tenant(), nil), "entra")
	ldap := sibling(entra, "ldap", &gsync.Snapshot{
		Users: []gsync.User{{ID: "x"}, {ID: "y"}},
		Groups: []gsync.Group{
			{ID: "L1", Name: "hr", Users: []string{"x"}},
			{ID: "L2", Name: "eng", Users: []string{"y"}}, // also in Entra: whoever claims first keeps it
		},
	})
	manual := []gsync.Tuple{tup("user:zed", "group:manual"), tup("user:zed", "group:eng-guests")}
	entra.srv.WriteTuples(t, entra.storeID, manual...)

	entra.run(true)
	rep := ldap.run(true)
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[s.Name] = s.Reason
	}
	if reasons["eng"] != gsync.ReasonOwnedByOther {
		t.Fatalf("ldap should leave entra's eng alone: %+v", rep.Skipped)
	}
	if got := ldap.owned(); !slices.Equal(got, []string{"group:hr"}) {
		t.Fatalf("ldap owns %q", got)
	}
	if got := entra.owned(); !slices.Equal(got, []string{"group:eng", "group:infra", "group:platform", "group:sales"}) {
		t.Fatalf("entra owns %q", got)
	}
	// Each converges without touching the other's groups or the manual tuples.
	for range 2 {
		if r := entra.run(true); r.Pending() {
			t.Fatalf("entra plans %+v", r.Changes)
		}
		if r := ldap.run(true); r.Pending() {
			t.Fatalf("ldap plans %+v", r.Changes)
		}
	}
	stored := entra.stored()
	for _, m := range append(manual, tup("user:x", "group:hr")) {
		if !slices.Contains(stored, m.String()) {
			t.Errorf("%s was deleted", m)
		}
	}
	if slices.Contains(stored, "user:y member group:eng") {
		t.Error("ldap wrote into entra's group")
	}
}

// A group that leaves the source, or the filters, has its tuples removed
// and is then released; a group nobody owns is never touched.
func TestGroupsLeavingAreRemovedThenReleased(t *testing.T) {
	e := owned(newEnv(t, tenant(), nil), "entra")
	e.srv.WriteTuples(t, e.storeID, tup("user:zed", "group:unowned"))
	e.run(true)

	snap := tenant()
	snap.Groups = snap.Groups[:3] // sales leaves the source
	e.src.snap = snap
	e.mapping.Filters.Exclude = []config.Match{{Name: "infra"}} // infra leaves the filters
	rep := e.run(true)
	if !slices.Equal(rep.Ownership.Releases, []string{"group:infra", "group:sales"}) {
		t.Fatalf("releases %q", rep.Ownership.Releases)
	}
	if got := e.owned(); !slices.Equal(got, []string{"group:eng", "group:platform"}) {
		t.Fatalf("owned after release: %q", got)
	}
	stored := e.stored()
	for _, s := range stored {
		if strings.HasSuffix(s, "group:sales") || strings.HasSuffix(s, " group:infra") {
			t.Errorf("tuple of a released group left: %s", s)
		}
	}
	if !slices.Contains(stored, "user:zed member group:unowned") {
		t.Error("an unowned group's tuple was deleted")
	}
	if r := e.run(true); r.Pending() || len(r.Ownership.Releases) != 0 || len(r.Ownership.Claims) != 0 {
		t.Fatalf("not converged: %+v", r.Ownership)
	}
}

func TestTargetDrivenSyncsOnlyExistingGroups(t *testing.T) {
	e := newEnv(t, tenant(), nil)
	e.settings = config.Sync{Policy: config.PolicySync, Ownership: config.Ownership{Mode: config.OwnershipTargetDriven}}
	// sales exists (an owner tuple); a group not in the source has a stale member.
	e.srv.WriteTuples(t, e.storeID,
		gsync.Tuple{User: "user:boss", Relation: "owner", Object: "group:sales"},
		tup("user:old", "group:sales"),
		tup("user:zed", "group:elsewhere"))
	rep := e.run(true)
	var objects []string
	for _, c := range rep.Changes {
		objects = append(objects, c.Object)
	}
	if !slices.Equal(objects, []string{"group:sales"}) {
		t.Fatalf("changed %q", objects)
	}
	n := 0
	for _, s := range rep.Skipped {
		if s.Reason == gsync.ReasonNotInTarget {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("skipped %+v", rep.Skipped)
	}
	stored := e.stored()
	if !slices.Contains(stored, "user:dave member group:sales") || slices.Contains(stored, "user:old member group:sales") ||
		!slices.Contains(stored, "user:zed member group:elsewhere") || !slices.Contains(stored, "user:boss owner group:sales") {
		t.Fatalf("store %q", stored)
	}
}

func TestAddOnlyNeverDeletes(t *testing.T) {
	e := owned(newEnv(t, tenant(), nil), "entra")
	e.run(true)
	before := len(e.stored())
	snap := tenant()
	snap.Groups[3].Users = []string{"alice"} // dave out, alice in
	snap.Groups = snap.Groups[1:]            // eng leaves
	e.src.snap = snap
	e.settings.Policy = config.PolicyAddOnly
	rep := e.run(true)
	if rep.Result.Deleted != 0 || rep.Summary.ToDelete != 0 || rep.Result.Added != 1 || len(rep.Ownership.Releases) != 0 {
		t.Fatalf("add-only: %+v %+v", rep.Result, rep.Ownership)
	}
	for _, w := range rep.Withheld {
		if w.Reason != gsync.ReasonPolicyAddOnly {
			t.Fatalf("withheld %+v", w)
		}
	}
	if len(rep.Withheld) == 0 || len(e.stored()) != before+1 {
		t.Fatalf("withheld %d, stored %d → %d", len(rep.Withheld), before, len(e.stored()))
	}
}

func TestGuardsStopBeforeWriting(t *testing.T) {
	big := &gsync.Snapshot{Groups: []gsync.Group{{ID: "g", Name: "all"}}}
	for i := range 40 {
		id := string(rune('a'+i/26)) + string(rune('a'+i%26))
		big.Users = append(big.Users, gsync.User{ID: id})
		big.Groups[0].Users = append(big.Groups[0].Users, id)
	}
	cases := []struct {
		name   string
		guards config.Guards
		next   func() *gsync.Snapshot
		guard  string
	}{
		{"max deletes", config.Guards{MaxDeletes: 10}, func() *gsync.Snapshot {
			s := *big
			s.Groups = []gsync.Group{{ID: "g", Name: "all", Users: big.Groups[0].Users[:25]}}
			return &s
		}, gsync.GuardMaxDeletes},
		{"max delete percent", config.Guards{MaxDeletePercent: 20}, func() *gsync.Snapshot {
			s := *big
			s.Groups = []gsync.Group{{ID: "g", Name: "all", Users: big.Groups[0].Users[:25]}}
			return &s
		}, gsync.GuardMaxDeletePercent},
		// A filter removed by mistake: a second group of everyone appears.
		{"max adds", config.Guards{MaxAdds: 10}, func() *gsync.Snapshot {
			s := *big
			s.Groups = []gsync.Group{big.Groups[0], {ID: "h", Name: "everyone", Users: big.Groups[0].Users}}
			return &s
		}, gsync.GuardMaxAdds},
		{"max add percent", config.Guards{MaxAddPercent: 50}, func() *gsync.Snapshot {
			s := *big
			s.Groups = []gsync.Group{big.Groups[0], {ID: "h", Name: "everyone", Users: big.Groups[0].Users}}
			return &s
		}, gsync.GuardMaxAddPercent},
		{"no groups", config.Guards{}, func() *gsync.Snapshot { return &gsync.Snapshot{Users: big.Users} }, gsync.GuardEmptySource},
		{"no members", config.Guards{}, func() *gsync.Snapshot {
			return &gsync.Snapshot{Users: big.Users, Groups: []gsync.Group{{ID: "g", Name: "all"}}}
		}, gsync.GuardEmptySource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := owned(newEnv(t, big, nil), "entra")
			e.run(true)
			before := e.stored()
			e.src.snap = tc.next()
			e.settings.Guards = tc.guards
			e.srv.ResetCounts()
			for _, apply := range []bool{false, true} {
				rep, err := e.engine().Run(context.Background(), apply)
				var ge *gsync.GuardError
				if !errors.As(err, &ge) || ge.Trip.Guard != tc.guard || rep.Guard == nil || !strings.Contains(ge.Trip.Message, "--force") {
					t.Fatalf("apply=%v: err %v, report guard %+v", apply, err, rep.Guard)
				}
			}
			if e.srv.WriteRequests() != 0 || !slices.Equal(e.stored(), before) {
				t.Fatalf("a guard trip wrote %d requests", e.srv.WriteRequests())
			}
			// --force lets exactly this run through.
			e.force = true
			if _, err := e.engine().Run(context.Background(), true); err != nil {
				t.Fatalf("forced run: %v", err)
			}
			e.assertConverged()
		})
	}
	// Allowing an empty source lets it empty the managed groups.
	e := owned(newEnv(t, big, nil), "entra")
	e.run(true)
	e.src.snap = &gsync.Snapshot{}
	e.settings.Guards = config.Guards{AllowEmptySource: true}
	rep := e.run(true)
	if rep.Result.Deleted != 40 || len(e.stored()) != 0 {
		t.Fatalf("allowed empty source: %+v, %d left", rep.Result, len(e.stored()))
	}
}

func leaseEnv(t *testing.T) (*env, *openfga.Sink) {
	e := owned(newEnv(t, tenant(), nil), "entra")
	e.settings.Lease = config.Lease{Enabled: true, TTL: config.Duration(time.Minute)}
	sink, err := openfga.New(context.Background(), e.fga)
	if err != nil {
		t.Fatal(err)
	}
	return e, sink
}

func TestLeaseKeepsRunsApart(t *testing.T) {
	e, sink := leaseEnv(t)
	held := openfga.NewLease(sink, e.settings.Ownership, time.Minute, nil)
	_, release, err := held.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.engine().Run(context.Background(), true)
	if !errors.Is(err, gsync.ErrLeaseBusy) || len(e.inScope()) != 0 {
		t.Fatalf("second run: %v, wrote %q", err, e.inScope())
	}
	// plan needs no lease.
	if _, err := e.engine().Run(context.Background(), false); err != nil {
		t.Fatalf("plan during a lease: %v", err)
	}
	// A run that may wait gets the lease once it is given back.
	e.settings.Lease.Wait = config.Duration(30 * time.Second)
	go func() { time.Sleep(300 * time.Millisecond); release() }()
	if _, err := e.engine().Run(context.Background(), true); err != nil {
		t.Fatalf("waiting run: %v", err)
	}
	e.assertConverged()
	// And it gave the lease back.
	if _, rel, err := held.Acquire(context.Background(), 0); err != nil {
		t.Fatalf("lease not released: %v", err)
	} else {
		rel()
	}
}

func TestLeaseOnlyOneOfManyWins(t *testing.T) {
	_, sink := leaseEnv(t)
	o := config.Ownership{Type: "groupsync_instance", Instance: "entra"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, busy := 0, 0
	var releases []func()
	for range 8 {
		wg.Go(func() {
			_, rel, err := openfga.NewLease(sink, o, time.Minute, nil).Acquire(context.Background(), 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
				releases = append(releases, rel)
			case errors.Is(err, gsync.ErrLeaseBusy):
				busy++
			default:
				t.Errorf("acquire: %v", err)
			}
		})
	}
	wg.Wait()
	for _, r := range releases {
		r()
	}
	if won != 1 || busy != 7 {
		t.Fatalf("won %d, busy %d", won, busy)
	}
}

func TestExpiredLeaseIsTakenOverAndTheLoserStops(t *testing.T) {
	e, sink := leaseEnv(t)
	o := config.Ownership{Type: "groupsync_instance", Instance: "entra"}
	const ttl = 1500 * time.Millisecond
	// A run that dies holding the lease: it stops renewing, the tuple stays.
	parent, crash := context.WithCancel(context.Background())
	if _, _, err := openfga.NewLease(sink, o, ttl, nil).Acquire(parent, 0); err != nil {
		t.Fatal(err)
	}
	crash()
	next := openfga.NewLease(sink, o, ttl, nil)
	if _, _, err := next.Acquire(context.Background(), 0); !errors.Is(err, gsync.ErrLeaseBusy) {
		t.Fatalf("a fresh lease was taken: %v", err)
	}
	// Expiry is judged by OpenFGA's clock, whose Date header is in whole
	// seconds (rounded down): a lease is seen expired up to a second late.
	time.Sleep(ttl + 1100*time.Millisecond)
	leased, release, err := next.Acquire(context.Background(), 0)
	if err != nil {
		t.Fatalf("expired lease not taken over: %v", err)
	}
	defer release()
	// Someone replaces the lease under the holder: its next renewal sees
	// it, and its context ends so that it stops writing.
	lease := gsync.Tuple{User: "groupsync_instance:entra", Relation: "lease", Object: "groupsync_instance:entra"}
	time.Sleep(10 * time.Millisecond)
	e.srv.DeleteTuples(t, e.storeID, lease)
	e.srv.WriteTuples(t, e.storeID, lease)
	select {
	case <-leased.Done():
		if !errors.Is(context.Cause(leased), openfga.ErrLeaseLost) {
			t.Fatalf("cause %v", context.Cause(leased))
		}
	case <-time.After(ttl):
		t.Fatal("the holder did not notice it lost the lease")
	}
}

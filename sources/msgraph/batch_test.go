package msgraph

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// minRequests is the fewest Graph HTTP requests a full read can make, as
// cmd/groupsync-bench counts it: the group list in pages of 999, and every
// read group's member pages (999 a page) packed 20 to a $batch.
func minRequests(t *graphtest.Tenant) int64 {
	pages := 0
	for _, g := range t.Groups {
		if g.MailEnabled && !g.SecurityEnabled && !slices.Contains(g.GroupTypes, "Unified") {
			continue // distribution lists are not read
		}
		pages += max(1, (len(g.Members)+998)/999)
	}
	return int64((len(t.Groups)+998)/999 + (pages+19)/20)
}

// bigGroupsTenant has three groups over 999 members (3, 2 and 2 member
// pages) listed first, and 60 groups of one member: 67 member pages.
func bigGroupsTenant() *graphtest.Tenant {
	tenant := &graphtest.Tenant{}
	for i := range 2500 {
		tenant.Users = append(tenant.Users, graphtest.User{ID: fmt.Sprintf("00000000-0000-0000-0001-%012d", i),
			UserPrincipalName: fmt.Sprintf("user%d@contoso.example", i), AccountEnabled: true, UserType: "Member"})
	}
	for i, n := range []int{2500, 1500, 1200} {
		g := graphtest.Group{ID: fmt.Sprintf("00000000-0000-0000-0002-%012d", i), DisplayName: fmt.Sprintf("big-%d", i), SecurityEnabled: true}
		for _, u := range tenant.Users[:n] {
			g.Members = append(g.Members, u.ID)
		}
		tenant.Groups = append(tenant.Groups, g)
	}
	for i := range 60 {
		tenant.Groups = append(tenant.Groups, graphtest.Group{ID: fmt.Sprintf("00000000-0000-0000-0003-%012d", i),
			DisplayName: fmt.Sprintf("team-%d", i), SecurityEnabled: true, Members: []string{tenant.Users[i].ID}})
	}
	return tenant
}

// Continuation pages fill the batches still to be sent: exact request
// counts for groups of several pages. Sent in rounds, the 67 member pages
// took 6 batches (63 first pages in 4, the 3 second pages in 1, the third
// page of big-0 in 1).
func TestPackingExactRequests(t *testing.T) {
	for _, c := range []struct {
		parallel int
		batches  int64
	}{
		// One batch in flight: the second and third pages ride in the
		// full batches after the one that led to them; 67 pages in
		// ceil(67/20) = 4 batches, the minimum.
		{1, 4},
		// Four in flight: three full batches go out at once (the 3 first
		// pages left wait for them), then those 3 with the 3 second pages,
		// then big-0's third page: the chain of big-0's pages is 3 batches
		// long after the first.
		{4, 5},
	} {
		t.Run(fmt.Sprintf("parallel=%d", c.parallel), func(t *testing.T) {
			tenant := bigGroupsTenant()
			srv := graphtest.New(t, tenant)
			cfg := graphConfig(srv)
			cfg.MaxParallelRequests = c.parallel
			s, src := snapshot(t, cfg)
			if len(s.Groups) != 63 || len(group(s, "big-0").Users) != 2500 || len(group(s, "big-2").Users) != 1200 || len(s.Users) != 2500 {
				t.Fatalf("groups %d, big-0 %d, users %d", len(s.Groups), len(group(s, "big-0").Users), len(s.Users))
			}
			st := srv.Stats()
			if st.GroupPages != 1 || st.MemberPages != 67 || st.BatchItems != 67 || st.BatchPosts != c.batches {
				t.Fatalf("requests: %+v", st)
			}
			if n := src.Stats().Requests.Load(); n != 1+c.batches {
				t.Fatalf("source counted %d HTTP requests, want %d", n, 1+c.batches)
			}
			if minRequests(tenant) != 5 {
				t.Fatalf("minimum %d", minRequests(tenant))
			}
		})
	}
}

// A generated tenant the size of the benchmarks' medium one is read in at
// most 5% more requests than the minimum with the default 4 batches in
// flight (one at a time too), and packing does not change what is read.
// With 8 in flight the first pages are sent before "All Company"'s chain of
// ten pages ends, and its last pages go out nearly alone: that is only
// logged.
func TestPackingNearMinimum(t *testing.T) {
	o := graphtest.GenOptions{Seed: 42, Users: 10_000, Groups: 1_000, MaxDepth: 3, MembersPerGroup: 90,
		GuestFraction: 0.03, DisabledFraction: 0.02, Devices: 200, Cycles: 1}
	if raceEnabled || testing.Short() {
		o.Users, o.Groups, o.Devices = 6_000, 600, 120
	}
	tenant := graphtest.Generate(o)
	least := minRequests(tenant)
	var first *gsync.Snapshot
	for _, parallel := range []int{4, 1, 8} {
		srv := graphtest.New(t, tenant)
		cfg := graphConfig(srv)
		cfg.MaxParallelRequests = parallel
		s, _ := snapshot(t, cfg)
		got := srv.Stats().Requests
		t.Logf("max_parallel_requests %d: %d requests (%d batched), minimum %d (%+.1f%%)",
			parallel, got, srv.Stats().BatchItems, least, 100*float64(got-least)/float64(least))
		if parallel <= 4 && float64(got) > 1.05*float64(least) {
			t.Errorf("max_parallel_requests %d: %d requests, more than 1.05 × the minimum %d", parallel, got, least)
		}
		sortSkips(s)
		if first == nil {
			first = s
		} else if !reflect.DeepEqual(first, s) {
			t.Errorf("max_parallel_requests %d gave another snapshot", parallel)
		}
	}
}

func sortSkips(s *gsync.Snapshot) {
	slices.SortFunc(s.Skipped, func(a, b gsync.Skip) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Reason, b.Reason))
	})
}

// Cancelling a read mid-way ends it with the context's error, after the
// batches in flight have come back, and no snapshot.
func TestPackingCancelled(t *testing.T) {
	srv := graphtest.New(t, bigGroupsTenant(), graphtest.WithLatency(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if r.URL.Path == "/v1.0/$batch" && srv.Stats().BatchPosts >= 2 {
			cancel()
		}
		return nil
	})
	src, err := New(graphConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := src.Snapshot(ctx)
	if !errors.Is(err, context.Canceled) || s != nil {
		t.Fatalf("snapshot %v, err %v", s != nil, err)
	}
}

package authentik

import (
	"context"
	"slices"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/authentik/authentiktest"
	gsync "github.com/groupsync/groupsync/sync"
)

// TestSliceRequests pins what a one-user and a one-group slice send, and
// the ways a user is found: by the mapping's key, pk and uid.
func TestSliceRequests(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	m := config.Default().Mapping
	m.User.Key = "mail"
	src, err := New(cfgFor(srv), WithMapping(m))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		slice    gsync.Slice
		requests int64
		groups   []string
		users    []string
	}{
		// GET users/?email=, then Platform and its ancestors one by one
		// (Engineering, Infra): bob is in the cycle.
		{"user by mail", gsync.Slice{Users: []string{"bob@example.com"}}, 4, []string{"Engineering", "Infra", "Platform"}, []string{"bob"}},
		{"user by pk", gsync.Slice{Users: []string{"4"}}, 2, []string{"Sales"}, []string{"dave@partner.example"}},
		// uid is not filterable: the users are listed (7 users, page size 2).
		{"user by uid", gsync.Slice{Users: []string{authentiktest.UID(1)}}, 4 + 3, []string{"Engineering", "Infra", "Platform"}, []string{"alice"}},
		// GET groups/?name=, each subgroup by pk (Infra, Platform: the
		// cycle ends at Engineering), one users/?groups_by_pk= list (page
		// size 2, three users, two pages).
		{"group by name", gsync.Slice{Groups: []string{"Engineering"}}, 1 + 2 + 2, []string{"Engineering", "Infra", "Platform"}, []string{"alice", "bob", "carol"}},
		{"group by pk", gsync.Slice{Groups: []string{authentiktest.GroupPK("Sales")}}, 2, []string{"Sales"}, []string{"dave@partner.example"}},
		{"unknown user and group", gsync.Slice{Users: []string{"nobody@example.com"}, Groups: []string{"Nope"}}, 2, nil, nil},
		{"service account", gsync.Slice{Users: []string{"5"}}, 1, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap, err := src.SnapshotSlice(ctx, c.slice)
			if err != nil {
				t.Fatal(err)
			}
			if got := src.LastRead(); got.Requests != c.requests || got.Mode != "slice" {
				t.Errorf("LastRead %+v, want %d requests in mode slice", got, c.requests)
			}
			var groups, users []string
			for _, g := range snap.Groups {
				groups = append(groups, g.Name)
			}
			for _, u := range snap.Users {
				users = append(users, u.UPN)
			}
			slices.Sort(groups)
			slices.Sort(users)
			if !slices.Equal(groups, c.groups) || !slices.Equal(users, c.users) {
				t.Errorf("groups %v users %v, want %v %v", groups, users, c.groups, c.users)
			}
		})
	}
	// In a user's slice, groups list only that user, and the links
	// between the groups are there.
	snap, err := src.SnapshotSlice(ctx, gsync.Slice{Users: []string{"bob@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	pf, eng := group(snap, "Platform"), group(snap, "Engineering")
	if len(pf.Users) != 1 || len(eng.Users) != 0 || !slices.Contains(eng.Groups, pf.ID) {
		t.Errorf("Platform %+v, Engineering %+v", pf, eng)
	}
}

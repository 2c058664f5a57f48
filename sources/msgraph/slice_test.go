package msgraph

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// sliceMappings are the nesting modes, users by upn, groups by id (the
// generated tenant repeats display names).
func sliceMappings() []config.Mapping {
	var out []config.Mapping
	for _, n := range []string{"flatten", "userset", "direct"} {
		m := config.Default().Mapping
		m.User.Key, m.Group.Key, m.Nesting = "upn", "id", n
		out = append(out, m)
	}
	return out
}

// mapped maps a snapshot under each mapping and keeps the tuples keep
// selects, as strings.
func mapped(t *testing.T, snap *gsync.Snapshot, keep func(gsync.Tuple) bool) [][]string {
	t.Helper()
	var out [][]string
	for _, m := range sliceMappings() {
		mapper, err := gsync.NewMapper(m)
		if err != nil {
			t.Fatal(err)
		}
		d, err := mapper.Map(snap)
		if err != nil {
			t.Fatal(err)
		}
		var ts []string
		for _, tu := range d.Members.Tuples() {
			if keep(tu) {
				ts = append(ts, tu.String())
			}
		}
		out = append(out, ts)
	}
	return out
}

// TestSliceMatchesFullRead compares slices with the full read, user by
// user and group by group, under each nesting mode and the group kind
// settings and filters: a slice maps to the full read's tuples for its
// users and groups.
func TestSliceMatchesFullRead(t *testing.T) {
	generated := graphtest.Generate(graphtest.GenOptions{Seed: 11, Users: 120, Groups: 40, MaxDepth: 3, Cycles: 2,
		GuestFraction: 0.1, DisabledFraction: 0.05, Devices: 5, ServicePrincipals: 3, OrgContacts: 3, DuplicateNames: 3})
	for _, c := range []struct {
		name   string
		tenant *graphtest.Tenant
		groups config.MSGraphGroups
	}{
		{"fixture", fixture(), config.MSGraphGroups{}},
		{"fixture kinds", fixture(), config.MSGraphGroups{SecurityEnabledOnly: true, SkipDynamic: true, SkipRoleAssignable: true}},
		{"fixture distribution", fixture(), config.MSGraphGroups{IncludeDistribution: true}},
		{"fixture filter", fixture(), config.MSGraphGroups{Filter: "startswith(displayName,'Eng')"}},
		{"fixture advanced filter", fixture(), config.MSGraphGroups{Filter: "endswith(displayName,'ring')"}},
		{"generated", generated, config.MSGraphGroups{}},
		{"generated kinds", generated, config.MSGraphGroups{SecurityEnabledOnly: true, SkipDynamic: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := graphtest.New(t, c.tenant)
			cfg := graphConfig(srv)
			cfg.PageSize = 7
			cfg.Groups = c.groups
			src, err := New(cfg, WithMapping(sliceMappings()[0]))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			full, err := src.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range c.tenant.Users {
				if i%3 != 0 && c.name[0] == 'g' {
					continue // a third of the generated users is enough
				}
				snap, err := src.SnapshotSlice(ctx, gsync.Slice{Users: []string{u.UserPrincipalName}})
				if err != nil {
					t.Fatal(err)
				}
				keep := func(tu gsync.Tuple) bool { return tu.User == "user:"+u.UserPrincipalName }
				if got, want := mapped(t, snap, keep), mapped(t, full, keep); !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("user %s: slice maps to %v, full read to %v", u.UserPrincipalName, got, want)
				}
			}
			for _, g := range c.tenant.Groups {
				snap, err := src.SnapshotSlice(ctx, gsync.Slice{Groups: []string{g.ID}})
				if err != nil {
					t.Fatal(err)
				}
				keep := func(tu gsync.Tuple) bool { return tu.Object == "group:"+g.ID }
				if got, want := mapped(t, snap, keep), mapped(t, full, keep); !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("group %s (%s): slice maps to %v, full read to %v", g.DisplayName, g.ID, got, want)
				}
			}
		})
	}
}

// TestSliceRequests pins what one-user and one-group slices send.
func TestSliceRequests(t *testing.T) {
	srv := graphtest.New(t, fixture())
	ctx := context.Background()
	names := func(s *gsync.Snapshot) string {
		var gs, us []string
		for _, g := range s.Groups {
			gs = append(gs, g.Name)
		}
		for _, u := range s.Users {
			us = append(us, strings.TrimSuffix(u.UPN, "@contoso.example"))
		}
		slices.Sort(gs)
		slices.Sort(us)
		return fmt.Sprint(gs, us)
	}
	for _, c := range []struct {
		name        string
		key         string
		slice       gsync.Slice
		posts, item int64 // $batch requests, their items
		stats       graphtest.Stats
		want        string
	}{
		// One $batch: the user, /memberOf and /transitiveMemberOf (u1 is
		// in Engineering and Newsletter, so in Infra and Platform too);
		// one $batch of the four groups' /memberOf.
		{"user by upn", "upn", gsync.Slice{Users: []string{"u1@contoso.example"}}, 2, 3 + 4,
			graphtest.Stats{UserGets: 1, MemberOfPages: 1 + 4, TransitiveMemberOfPages: 1},
			"[Engineering Infra Newsletter Platform] [u1]"},
		// By mail: /users?$filter=mail eq first, then as by upn.
		{"user by mail", "mail", gsync.Slice{Users: []string{"u1@contoso.example"}}, 3, 1 + 2 + 4,
			graphtest.Stats{UserPages: 1, MemberOfPages: 1 + 4, TransitiveMemberOfPages: 1},
			"[Engineering Infra Newsletter Platform] [u1]"},
		// A user in one group: no links to ask for.
		// (u4's upn has a '#', which the request escapes.)
		{"user in one group", "upn", gsync.Slice{Users: []string{"u4_fabrikam.example#EXT#@contoso.example"}}, 1, 3,
			graphtest.Stats{UserGets: 1, MemberOfPages: 1, TransitiveMemberOfPages: 1},
			"[Sales] [u4_fabrikam.example#EXT#]"},
		// A key on another property: an advanced query.
		{"user by attribute", "attribute:displayName", gsync.Slice{Users: []string{"00000000-0000-0000-0000-0000000000u3"}}, 3, 1 + 2 + 4,
			graphtest.Stats{UserPages: 1, MemberOfPages: 1 + 4, TransitiveMemberOfPages: 1},
			"[Engineering Infra Platform Role Admins] [u3]"},
		{"unknown user", "upn", gsync.Slice{Users: []string{"nobody@contoso.example"}}, 1, 3,
			graphtest.Stats{UserGets: 1, MemberOfPages: 1, TransitiveMemberOfPages: 1}, "[] []"},
		// /groups?$filter=displayName eq, then the members of Engineering,
		// Platform and Infra, a $batch a level.
		{"group by name", "upn", gsync.Slice{Groups: []string{"Engineering"}}, 1 + 3, 1 + 3,
			graphtest.Stats{GroupPages: 1, MemberPages: 3}, "[Engineering Infra Platform] [u1 u2 u3 u5]"},
		// An id is asked for both as an id and as a name, in one $batch.
		{"group by id", "upn", gsync.Slice{Groups: []string{"00000000-0000-0000-0000-00000000000d"}}, 2, 3,
			graphtest.Stats{GroupPages: 1, GroupGets: 1, MemberPages: 1}, "[Sales] [u4_fabrikam.example#EXT#]"},
		{"unknown group", "upn", gsync.Slice{Groups: []string{"Nope"}}, 1, 1, graphtest.Stats{GroupPages: 1}, "[] []"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := config.Default().Mapping
			m.User.Key = c.key
			src, err := New(graphConfig(srv), WithMapping(m))
			if err != nil {
				t.Fatal(err)
			}
			srv.ResetStats()
			snap, err := src.SnapshotSlice(ctx, c.slice)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(snap); got != c.want {
				t.Errorf("slice %s, want %s", got, c.want)
			}
			rd := src.LastRead()
			if rd.Mode != "slice" || rd.Requests != c.posts || rd.BatchItems != c.item {
				t.Errorf("LastRead %+v, want %d requests, %d batch items", rd, c.posts, c.item)
			}
			st := srv.Stats()
			got := graphtest.Stats{UserGets: st.UserGets, UserPages: st.UserPages, GroupGets: st.GroupGets, GroupPages: st.GroupPages,
				MemberPages: st.MemberPages, MemberOfPages: st.MemberOfPages, TransitiveMemberOfPages: st.TransitiveMemberOfPages}
			if got != c.stats || st.BatchPosts != c.posts {
				t.Errorf("server saw %+v in %d $batch, want %+v in %d", got, st.BatchPosts, c.stats, c.posts)
			}
		})
	}
}

// Package sourcetest is the conformance suite every source passes, in the
// manner of rclone's fstest: one source-neutral Tenant, served by each
// source's own backend (a file, graphtest, a real slapd, authentiktest),
// must map to the same tuples under the same mappings, and those tuples
// are computed here from the tenant alone, so the sources cannot all be
// wrong together.
//
//	tenant := sourcetest.Default()
//	src := ... // a source reading a backend loaded with tenant
//	sourcetest.Run(t, tenant, src)
//
// The tenant's ids differ from source to source (GUIDs, entryUUIDs, uids);
// the suite's mappings therefore key users by upn or mail and groups by
// name, which every source carries unchanged.
package sourcetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// Tenant is a directory every source can hold.
type Tenant struct {
	Users  []User
	Groups []Group
}

// User is one account. Name is the tenant's handle for it (used in
// Group.Users), not necessarily any source's attribute.
type User struct {
	Name     string
	UPN      string // login name: userPrincipalName, uid, authentik username
	Mail     string
	Disabled bool
}

// Group is one group with its direct members. Every group has at least
// one member, user or group (LDAP's groupOfNames requires one), and no two
// groups share a name (authentik requires it).
type Group struct {
	Name   string
	Users  []string // User.Name of direct user members
	Groups []string // Group.Name of direct subgroups
}

// Default is the suite's tenant: 24 users (three disabled, one in no
// group), eight groups nested three deep with a cycle (Engineering ⊃
// Platform ⊃ Infra ⊃ Engineering), a group in two parents (Frontend), a
// group with only subgroups (Leads), a name with a space, and a group of
// everyone larger than the page sizes the tests use.
func Default() *Tenant {
	t := &Tenant{}
	for i := 1; i <= 24; i++ {
		t.Users = append(t.Users, User{
			Name:     fmt.Sprintf("u%02d", i),
			UPN:      fmt.Sprintf("u%02d@corp.example", i),
			Mail:     fmt.Sprintf("person.%02d@mail.example", i),
			Disabled: i == 5 || i == 12 || i == 19,
		})
	}
	us := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf("u%02d", i))
		}
		return out
	}
	t.Groups = []Group{
		{Name: "Engineering", Users: us(1, 2), Groups: []string{"Platform", "Frontend"}},
		{Name: "Platform", Users: us(3, 5), Groups: []string{"Infra"}},
		{Name: "Infra", Users: us(6, 6), Groups: []string{"Engineering"}},
		{Name: "Frontend", Users: us(7, 8)},
		{Name: "Design Team", Users: us(8, 10), Groups: []string{"Frontend"}},
		{Name: "Sales", Users: us(11, 16)},
		{Name: "Everyone", Users: us(1, 23)},
		{Name: "Leads", Groups: []string{"Engineering", "Sales"}},
	}
	return t
}

// Mapping is one of the mappings the suite checks.
type Mapping struct {
	Name   string
	Config config.Mapping
}

// Mappings are the mappings Run checks: users by upn and by mail, groups
// by name; each nesting mode.
func Mappings() []Mapping {
	base := config.Default().Mapping
	flatten := base
	flatten.User.Key, flatten.Group.ReplaceWhitespace = "upn", "-"
	userset := flatten
	userset.Nesting = "userset"
	direct := base
	direct.User.Key, direct.Nesting = "mail", "direct"
	direct.Group.ReplaceWhitespace, direct.Group.Lowercase = "_", true
	return []Mapping{{"upn-flatten", flatten}, {"upn-userset", userset}, {"mail-direct", direct}}
}

// Expected computes the tuples a mapping must give for the tenant, from
// the tenant alone: users by the mapping's key (upn or mail), disabled
// users left out when skip_disabled is on, nesting as the mode says.
func Expected(t *Tenant, m config.Mapping) []gsync.Tuple {
	users := map[string]User{}
	for _, u := range t.Users {
		users[u.Name] = u
	}
	groups := map[string]Group{}
	for _, g := range t.Groups {
		groups[g.Name] = g
	}
	object := func(name string) string {
		if r := m.Group.ReplaceWhitespace; r != "" {
			name = strings.Join(strings.Fields(name), r)
		}
		if m.Group.Lowercase {
			name = strings.ToLower(name)
		}
		return m.ObjectType + ":" + name
	}
	user := func(name string) (string, bool) {
		u := users[name]
		if u.Disabled && m.User.SkipDisabled {
			return "", false
		}
		key := u.UPN
		if m.User.Key == "mail" {
			key = u.Mail
		}
		return m.User.Type + ":" + key, true
	}
	set := map[gsync.Tuple]bool{}
	for _, g := range t.Groups {
		obj := object(g.Name)
		add := func(u string) { set[gsync.Tuple{User: u, Relation: m.Relation, Object: obj}] = true }
		addUsers := func(of Group) {
			for _, n := range of.Users {
				if u, ok := user(n); ok {
					add(u)
				}
			}
		}
		addUsers(g)
		switch m.Nesting {
		case "userset":
			for _, sub := range g.Groups {
				add(object(sub) + "#" + m.Relation)
			}
		case "flatten":
			seen := map[string]bool{g.Name: true}
			queue := slices.Clone(g.Groups)
			for len(queue) > 0 {
				n := queue[0]
				queue = queue[1:]
				if seen[n] {
					continue
				}
				seen[n] = true
				addUsers(groups[n])
				queue = append(queue, groups[n].Groups...)
			}
		}
	}
	out := make([]gsync.Tuple, 0, len(set))
	for tu := range set {
		out = append(out, tu)
	}
	gsync.SortTuples(out)
	return out
}

// Run reads the source once and checks its snapshot: every group of the
// tenant, once, synced; under each of Mappings the exact tuples Expected
// gives; only the disabled members reported as skipped.
func Run(t *testing.T, tenant *Tenant, src gsync.Source) {
	t.Helper()
	snap, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	names := map[string]int{}
	for _, g := range snap.Groups {
		names[g.Name]++
		if g.NotSynced != "" {
			t.Errorf("group %q is not synced: %s", g.Name, g.NotSynced)
		}
	}
	for _, g := range tenant.Groups {
		if names[g.Name] != 1 {
			t.Errorf("group %q appears %d times in the snapshot", g.Name, names[g.Name])
		}
	}
	if len(snap.Groups) != len(tenant.Groups) {
		t.Errorf("snapshot has %d groups, tenant %d", len(snap.Groups), len(tenant.Groups))
	}
	if len(snap.Skipped) > 0 {
		t.Errorf("the source skipped: %+v", snap.Skipped)
	}
	var wantSkipped []string
	inGroup := map[string]bool{}
	for _, g := range tenant.Groups {
		for _, u := range g.Users {
			inGroup[u] = true
		}
	}
	for _, u := range tenant.Users {
		if u.Disabled && inGroup[u.Name] {
			wantSkipped = append(wantSkipped, "user disabled "+u.UPN)
		}
	}
	slices.Sort(wantSkipped)
	for _, m := range Mappings() {
		t.Run(m.Name, func(t *testing.T) {
			mapper, err := gsync.NewMapper(m.Config)
			if err != nil {
				t.Fatal(err)
			}
			d, err := mapper.Map(snap)
			if err != nil {
				t.Fatal(err)
			}
			want := Expected(tenant, m.Config)
			if missing, extra := diff(want, d.Members.Tuples()); len(missing)+len(extra) > 0 {
				t.Errorf("%d tuples, want %d\nmissing:\n  %s\nextra:\n  %s", d.Members.Len(), len(want),
					strings.Join(missing, "\n  "), strings.Join(extra, "\n  "))
			}
			var skipped []string
			for _, s := range d.Skipped {
				skipped = append(skipped, s.Kind+" "+s.Reason+" "+s.Name)
			}
			slices.Sort(skipped)
			if !slices.Equal(skipped, wantSkipped) {
				t.Errorf("skipped %v, want %v", skipped, wantSkipped)
			}
		})
	}
}

func diff(want, got []gsync.Tuple) (missing, extra []string) {
	w := map[gsync.Tuple]bool{}
	for _, tu := range want {
		w[tu] = true
	}
	g := map[gsync.Tuple]bool{}
	for _, tu := range got {
		g[tu] = true
		if !w[tu] {
			extra = append(extra, tu.String())
		}
	}
	for _, tu := range want {
		if !g[tu] {
			missing = append(missing, tu.String())
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}

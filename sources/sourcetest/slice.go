package sourcetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// SliceSource is a source that reads slices as well as the whole tenant.
type SliceSource interface {
	gsync.Source
	gsync.SliceSource
}

// SliceBackend is what RunSlice needs of a source's backend.
type SliceBackend struct {
	// Source builds a source reading the backend for a mapping: sources
	// resolve a slice's users by the mapping's user key, so each mapping
	// gets its own.
	Source func(t *testing.T, m config.Mapping) SliceSource
	// Fail makes later requests to the backend fail; RunSlice calls it
	// last, to check that a failed read is an error, not part of a
	// snapshot. Failing only the reads after the first (a user's groups,
	// a group's members) checks a read that fails midway.
	Fail func(t *testing.T)
}

// SliceUsers are the tenant's users RunSlice reads one at a time: in two
// groups at the top, in a group with two parents, in the cycle, disabled,
// in no group.
var SliceUsers = []string{"u01", "u07", "u06", "u05", "u24", "u11"}

// SliceGroups are the groups RunSlice reads one at a time: the cycle, a
// group with two parents and a subgroup, one with only subgroups, a name
// with a space, a leaf.
var SliceGroups = []string{"Engineering", "Design Team", "Leads", "Frontend", "Sales"}

// RunSlice checks SnapshotSlice against Snapshot: under each of Mappings,
// the tuples a slice of one user maps to, restricted to that user, are
// those of the whole tenant restricted so; the tuples a slice of one group
// maps to on that group's object are the whole tenant's. A user or group
// the source does not know is no error and leaves the snapshot without it;
// a failed request is an error and no snapshot.
func RunSlice(t *testing.T, tenant *Tenant, b SliceBackend) {
	t.Helper()
	users := map[string]User{}
	for _, u := range tenant.Users {
		users[u.Name] = u
	}
	var (
		src     SliceSource
		lastKey string // u01 as the last source finds them
	)
	for _, m := range Mappings() {
		t.Run(m.Name, func(t *testing.T) {
			src = b.Source(t, m.Config)
			ctx := context.Background()
			mapper, err := gsync.NewMapper(m.Config)
			if err != nil {
				t.Fatal(err)
			}
			full, err := src.Snapshot(ctx)
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			want, err := mapper.Map(full)
			if err != nil {
				t.Fatal(err)
			}
			key := func(u User) string {
				if m.Config.User.Key == "mail" {
					return u.Mail
				}
				return u.UPN
			}
			lastKey = key(users["u01"])
			for _, name := range SliceUsers {
				u := users[name]
				user := m.Config.User.Type + ":" + key(u)
				got := sliceTuples(t, src, mapper, gsync.Slice{Users: []string{key(u)}})
				for _, tu := range got {
					if strings.HasPrefix(tu.User, m.Config.User.Type+":") && tu.User != user {
						t.Errorf("slice of %s maps %v: a group lists a user the slice does not name", name, tu)
					}
				}
				keep := func(tu gsync.Tuple) bool { return tu.User == user }
				if missing, extra := diff(filter(want.Members.Tuples(), keep), filter(got, keep)); len(missing)+len(extra) > 0 {
					t.Errorf("slice of user %s (%s):\nmissing:\n  %s\nextra:\n  %s", name, key(u),
						strings.Join(missing, "\n  "), strings.Join(extra, "\n  "))
				}
			}
			for _, name := range SliceGroups {
				object := objectOf(m.Config, name)
				got := sliceTuples(t, src, mapper, gsync.Slice{Groups: []string{name}})
				keep := func(tu gsync.Tuple) bool { return tu.Object == object }
				if missing, extra := diff(filter(want.Members.Tuples(), keep), filter(got, keep)); len(missing)+len(extra) > 0 {
					t.Errorf("slice of group %s:\nmissing:\n  %s\nextra:\n  %s", name,
						strings.Join(missing, "\n  "), strings.Join(extra, "\n  "))
				}
			}
			// Unknown users and groups: no error, not in the snapshot; the
			// known ones beside them are read as alone.
			snap, err := src.SnapshotSlice(ctx, gsync.Slice{
				Users:  []string{"nobody@corp.example", key(users["u03"])},
				Groups: []string{"No Such Group", "Sales"},
			})
			if err != nil {
				t.Fatalf("slice with unknown user and group: %v", err)
			}
			for _, g := range snap.Groups {
				if g.Name == "No Such Group" {
					t.Errorf("unknown group in the snapshot: %+v", g)
				}
			}
			for _, u := range snap.Users {
				if u.UPN == "nobody@corp.example" || u.Mail == "nobody@corp.example" {
					t.Errorf("unknown user in the snapshot: %+v", u)
				}
			}
			if !slices.ContainsFunc(snap.Groups, func(g gsync.Group) bool { return g.Name == "Sales" && len(g.Users) == 6 }) {
				t.Errorf("slice lacks Sales with its 6 users: %+v", snap.Groups)
			}
			if !slices.ContainsFunc(snap.Users, func(u gsync.User) bool { return u.UPN == users["u03"].UPN }) {
				t.Errorf("slice lacks user u03: %+v", snap.Users)
			}
		})
	}
	if b.Fail == nil || src == nil {
		return
	}
	t.Run("failure", func(t *testing.T) {
		b.Fail(t)
		for _, s := range []gsync.Slice{{Users: []string{lastKey}}, {Groups: []string{"Engineering"}}} {
			snap, err := src.SnapshotSlice(context.Background(), s)
			if err == nil || snap != nil {
				t.Errorf("slice %+v with a failing backend: snapshot %v, error %v; want only an error", s, snap != nil, err)
			} else {
				t.Logf("slice %+v: %v", s, err)
			}
		}
	})
}

func sliceTuples(t *testing.T, src SliceSource, mapper *gsync.Mapper, s gsync.Slice) []gsync.Tuple {
	t.Helper()
	snap, err := src.SnapshotSlice(context.Background(), s)
	if err != nil {
		t.Fatalf("slice %+v: %v", s, err)
	}
	d, err := mapper.Map(snap)
	if err != nil {
		t.Fatalf("slice %+v: map: %v", s, err)
	}
	return d.Members.Tuples()
}

func filter(ts []gsync.Tuple, keep func(gsync.Tuple) bool) []gsync.Tuple {
	var out []gsync.Tuple
	for _, tu := range ts {
		if keep(tu) {
			out = append(out, tu)
		}
	}
	return out
}

// objectOf is the object a mapping gives a group of that name.
func objectOf(m config.Mapping, name string) string {
	if r := m.Group.ReplaceWhitespace; r != "" {
		name = strings.Join(strings.Fields(name), r)
	}
	if m.Group.Lowercase {
		name = strings.ToLower(name)
	}
	return m.ObjectType + ":" + name
}

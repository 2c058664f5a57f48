package sync

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Memberships behaves as the sorted, unique []Tuple it replaces: every
// accessor and Filter agree with the plain slice on random tuple sets.
func TestMembershipsAgreeWithTuples(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		var ts []Tuple
		for range r.IntN(200) {
			user := fmt.Sprintf("user:u%d", r.IntN(30))
			if r.IntN(5) == 0 {
				user = fmt.Sprintf("group:g%d#member", r.IntN(10))
			}
			ts = append(ts, Tuple{User: user, Relation: "member", Object: fmt.Sprintf("group:g%d", r.IntN(10))})
		}
		m := MembershipsOf(ts)
		want := slices.Clone(ts)
		SortTuples(want)
		want = slices.Compact(want)
		if got := m.Tuples(); !slices.Equal(got, want) {
			t.Fatalf("seed %d: Tuples() = %v, want %v", seed, got, want)
		}
		if m.Len() != len(want) {
			t.Fatalf("seed %d: Len() = %d, want %d", seed, m.Len(), len(want))
		}
		for i, w := range want {
			if got := m.At(i); got != w {
				t.Fatalf("seed %d: At(%d) = %v, want %v", seed, i, got, w)
			}
		}
		byObject := map[string][]string{}
		for _, w := range want {
			byObject[w.Object] = append(byObject[w.Object], w.User)
		}
		for obj, g := range m.groups() {
			var users []string
			for i := range g.Len() {
				users = append(users, g.User(i))
			}
			if !slices.Equal(users, byObject[obj]) {
				t.Fatalf("seed %d: group %s = %v, want %v", seed, obj, users, byObject[obj])
			}
		}
		keep := func(tu Tuple) bool { return (len(tu.User)+len(tu.Object))%3 != 0 }
		m.Filter(keep)
		want = slices.DeleteFunc(want, func(tu Tuple) bool { return !keep(tu) })
		if got := m.Tuples(); !slices.Equal(got, want) {
			t.Fatalf("seed %d: after Filter = %v, want %v", seed, got, want)
		}
		if len(m.groups()) != len(slices.CompactFunc(slices.Clone(want), func(a, b Tuple) bool { return a.Object == b.Object })) {
			t.Fatalf("seed %d: Filter left an empty group behind", seed)
		}
	}
}

func TestMembershipsOfRefusesMixedRelations(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("tuples of two relations held as one Memberships")
		}
	}()
	MembershipsOf([]Tuple{{User: "user:a", Relation: "member", Object: "group:a"}, {User: "user:a", Relation: "owner", Object: "group:b"}})
}

// Tuples read from the target are held compactly whatever their order,
// repeats and strays: what the diff sees is the sorted, unique tuples
// inside scope.
func TestExistingOf(t *testing.T) {
	scope := Scope{ObjectType: "group", Relation: "member", UserTypes: []string{"user", "group#member"}}
	read := MembershipsOf([]Tuple{{User: "user:b", Relation: "member", Object: "group:x"}})
	got := existingOf(scope, []Tuple{
		{User: "user:a", Relation: "member", Object: "group:x"},
		{User: "user:b", Relation: "member", Object: "group:x"}, // also read
		{User: "group:x#member", Relation: "member", Object: "group:a"},
		{User: "user:a", Relation: "owner", Object: "group:a"},   // another relation
		{User: "user:a", Relation: "member", Object: "folder:a"}, // another type
		{User: "user:a", Relation: "member", Object: "group:x"},  // repeated
	}, map[string][]string{"group:x": {"user:c", "user:a"}}, read)
	want := []Tuple{
		{User: "group:x#member", Relation: "member", Object: "group:a"},
		{User: "user:a", Relation: "member", Object: "group:x"},
		{User: "user:b", Relation: "member", Object: "group:x"},
		{User: "user:c", Relation: "member", Object: "group:x"},
	}
	if !slices.Equal(got.Tuples(), want) {
		t.Fatalf("existingOf = %v, want %v", got.Tuples(), want)
	}
	if same := existingOf(scope, nil, nil, read); !slices.Equal(same.Tuples(), read.Tuples()) {
		t.Fatal("nothing added changed the tuples read")
	}
}

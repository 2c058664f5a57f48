package sync

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/groupsync/groupsync/config"
)

// benchSnapshot is a tenant of users users and groups groups with about
// members memberships in total, skewed (a few big groups, many small) and
// nested one level in every tenth group.
func benchSnapshot(users, groups, members int) *Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	s := &Snapshot{Users: make([]User, users), Groups: make([]Group, groups)}
	for i := range s.Users {
		id := fmt.Sprintf("7f3c1a52-0b1e-4c8e-9d1a-%012d", i)
		s.Users[i] = User{ID: id, UPN: fmt.Sprintf("user%d@contoso.example", i)}
	}
	for g := range s.Groups {
		s.Groups[g] = Group{ID: fmt.Sprintf("2a9d0c11-6a6f-4f0e-8b7e-%012d", g), Name: fmt.Sprintf("team-%d", g)}
	}
	for range members {
		g := int(float64(groups) * r.Float64() * r.Float64()) // skewed towards low indexes
		s.Groups[g].Users = append(s.Groups[g].Users, s.Users[r.IntN(users)].ID)
	}
	for g := 10; g < groups; g += 10 {
		s.Groups[g].Groups = append(s.Groups[g].Groups, s.Groups[g-1].ID)
	}
	return s
}

func benchMapper(b *testing.B) *Mapper {
	m := config.Default().Mapping
	m.Nesting = "userset"
	mapper, err := NewMapper(m)
	if err != nil {
		b.Fatal(err)
	}
	return mapper
}

func BenchmarkMap(b *testing.B) {
	for _, size := range []struct{ users, groups, members int }{{1000, 100, 10_000}, {10_000, 1000, 100_000}, {100_000, 10_000, 1_000_000}} {
		b.Run(fmt.Sprintf("memberships=%d", size.members), func(b *testing.B) {
			s := benchSnapshot(size.users, size.groups, size.members)
			m := benchMapper(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Map(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiff diffs a desired state against an existing one that
// differs by 1%.
func BenchmarkDiff(b *testing.B) {
	for _, members := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("tuples=%d", members), func(b *testing.B) {
			m := benchMapper(b)
			d, err := m.Map(benchSnapshot(members/10, members/100, members))
			if err != nil {
				b.Fatal(err)
			}
			existing := make([]Tuple, 0, d.Members.Len())
			for i, t := range d.Members.Tuples() {
				if i%100 == 0 {
					t.User += "-gone"
				}
				existing = append(existing, t)
			}
			b.ReportAllocs()
			for b.Loop() {
				Diff(d, existing, m.Scope())
			}
		})
	}
}

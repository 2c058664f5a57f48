package graphtest

import (
	"reflect"
	"slices"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	o := GenOptions{Seed: 7, Users: 300, Groups: 40, MaxDepth: 3, MembersPerGroup: 20, GuestFraction: 0.1,
		DisabledFraction: 0.05, Devices: 5, ServicePrincipals: 3, OrgContacts: 2, DuplicateNames: 4, Cycles: 2}
	a, b := Generate(o), Generate(o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same options, different tenants")
	}
	o.Seed = 8
	if reflect.DeepEqual(a, Generate(o)) {
		t.Fatal("different seeds, same tenant")
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
}

// depths returns, per group, the longest chain of nested groups below it;
// ok is false if the group graph has a cycle.
func depths(tn *Tenant) (maxDepth int, ok bool) {
	children := map[string][]string{}
	for _, g := range tn.Groups {
		children[g.ID] = nil
	}
	for _, g := range tn.Groups {
		for _, m := range g.Members {
			if _, isGroup := children[m]; isGroup {
				children[g.ID] = append(children[g.ID], m)
			}
		}
	}
	const visiting = -1
	memo := map[string]int{}
	var depth func(id string) int
	ok = true
	depth = func(id string) int {
		if d, seen := memo[id]; seen {
			if d == visiting {
				ok = false
				return 0
			}
			return d
		}
		memo[id] = visiting
		d := 0
		for _, c := range children[id] {
			d = max(d, 1+depth(c))
		}
		memo[id] = d
		return d
	}
	for id := range children {
		maxDepth = max(maxDepth, depth(id))
	}
	return maxDepth, ok
}

// onCycle counts the groups that are their own transitive member.
func onCycle(tn *Tenant) int {
	isGroup := map[string]bool{}
	for _, g := range tn.Groups {
		isGroup[g.ID] = true
	}
	members := map[string][]string{}
	for _, g := range tn.Groups {
		members[g.ID] = g.Members
	}
	n := 0
	for _, g := range tn.Groups {
		seen := map[string]bool{}
		queue := slices.Clone(members[g.ID])
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			if !isGroup[m] || seen[m] {
				continue
			}
			seen[m] = true
			queue = append(queue, members[m]...)
		}
		if seen[g.ID] {
			n++
		}
	}
	return n
}

func TestGenerateShape(t *testing.T) {
	o := GenOptions{Seed: 1, Users: 2000, Groups: 300, MaxDepth: 4, MembersPerGroup: 30, GuestFraction: 0.1,
		DisabledFraction: 0.05, Devices: 20, ServicePrincipals: 5, OrgContacts: 5, DuplicateNames: 12}
	tn := Generate(o)
	if err := tn.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(tn.Users) != 2000 || len(tn.Groups) != 300 || len(tn.Devices) != 20 {
		t.Fatalf("sizes: %d users, %d groups, %d devices", len(tn.Users), len(tn.Groups), len(tn.Devices))
	}
	d, acyclic := depths(tn)
	if !acyclic || d != 4 {
		t.Errorf("depth = %d (acyclic %v), want exactly 4", d, acyclic)
	}

	names := map[string]int{}
	for _, g := range tn.Groups {
		names[g.DisplayName]++
	}
	if got := len(tn.Groups) - len(names); got != 12 {
		t.Errorf("%d groups share a name, want 12", got)
	}

	guests, disabled := 0, 0
	for _, u := range tn.Users {
		if u.UserType == "Guest" {
			guests++
		}
		if !u.AccountEnabled {
			disabled++
		}
	}
	if guests != 200 || disabled != 100 {
		t.Errorf("%d guests, %d disabled; want 200 and 100", guests, disabled)
	}

	// Kinds: system groups first, then a mix.
	if tn.Groups[0].DisplayName != "All Company" || len(tn.Groups[0].Members) != 1800 {
		t.Errorf("first group %q has %d members, want All Company with every member user", tn.Groups[0].DisplayName, len(tn.Groups[0].Members))
	}
	var unified, dynamic, role, distribution, security int
	for _, g := range tn.Groups {
		switch {
		case g.hasType("DynamicMembership"):
			dynamic++
		case g.hasType("Unified"):
			unified++
		case g.IsAssignableToRole:
			role++
		case g.MailEnabled && !g.SecurityEnabled:
			distribution++
		case g.SecurityEnabled:
			security++
		}
	}
	for kind, n := range map[string]int{"unified": unified, "dynamic": dynamic, "role": role, "distribution": distribution, "security": security} {
		if n == 0 {
			t.Errorf("no %s groups", kind)
		}
	}

	// Sizes are skewed: the largest ordinary group is far above the mean,
	// the median below it; and no group lists a member twice.
	var sizes []int
	for _, g := range tn.Groups[len(systemGroups):] {
		sizes = append(sizes, len(g.Members))
		if len(slices.Compact(slices.Sorted(slices.Values(g.Members)))) != len(g.Members) {
			t.Errorf("group %s lists a member twice", g.DisplayName)
		}
	}
	slices.Sort(sizes)
	if median, largest := sizes[len(sizes)/2], sizes[len(sizes)-1]; median >= 30 || largest < 5*30 {
		t.Errorf("sizes not skewed: median %d, largest %d", median, largest)
	}

	// Devices, service principals and contacts are members somewhere.
	kinds := map[string]string{}
	for _, o := range tn.Devices {
		kinds[o.ID] = "device"
	}
	for _, o := range tn.ServicePrincipals {
		kinds[o.ID] = "sp"
	}
	for _, o := range tn.OrgContacts {
		kinds[o.ID] = "contact"
	}
	seen := map[string]bool{}
	for _, g := range tn.Groups {
		for _, m := range g.Members {
			if k := kinds[m]; k != "" {
				seen[k] = true
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("non-user members: %v", seen)
	}
}

func TestGenerateCycles(t *testing.T) {
	tn := Generate(GenOptions{Seed: 3, Users: 200, Groups: 60, MaxDepth: 3, Cycles: 3})
	if err := tn.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, acyclic := depths(tn); acyclic {
		t.Fatal("no cycle")
	}
	if n := onCycle(tn); n < 2 {
		t.Errorf("%d groups on a cycle", n)
	}
	// Without nesting, cycles are pairs of groups holding each other.
	flat := Generate(GenOptions{Seed: 3, Users: 50, Groups: 40, Cycles: 2})
	if n := onCycle(flat); n != 4 {
		t.Errorf("%d groups on a cycle, want 4", n)
	}
	if n := onCycle(Generate(GenOptions{Seed: 3, Users: 200, Groups: 60, MaxDepth: 3})); n != 0 {
		t.Errorf("%d groups on a cycle without Cycles", n)
	}
}

func TestGenerateTiny(t *testing.T) {
	for _, o := range []GenOptions{{}, {Users: 1}, {Groups: 1}, {Users: 3, Groups: 2, MaxDepth: 5, Cycles: 3, DuplicateNames: 9}} {
		if err := Generate(o).Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func BenchmarkGenerateLarge(b *testing.B) {
	for b.Loop() {
		tn := Generate(GenOptions{Seed: 1, Users: 100_000, Groups: 10_000, MaxDepth: 4, MembersPerGroup: 90,
			GuestFraction: 0.05, DisabledFraction: 0.03, Devices: 2000, DuplicateNames: 50, Cycles: 5})
		n := 0
		for _, g := range tn.Groups {
			n += len(g.Members)
		}
		b.ReportMetric(float64(n), "memberships")
	}
}

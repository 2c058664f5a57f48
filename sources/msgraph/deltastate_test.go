package msgraph

import (
	"slices"
	"testing"
)

// The id table a state's member lists index: positions never move, a
// clone's new ids never reach the state it was cloned from, and an id is
// found whether it came with the decoded table or was added since.
func TestIDTable(t *testing.T) {
	base := idTable{ids: []string{"a", "c", "e"}, sorted: 3}
	if i, ok := base.find("c"); !ok || i != 1 {
		t.Fatalf("find(c) = %d, %v", i, ok)
	}
	if _, ok := base.find("b"); ok {
		t.Fatal("found b, which the table does not hold")
	}
	c := base.clone()
	if i := c.intern("b"); i != 3 || c.at(3) != "b" {
		t.Fatalf("intern(b) = %d", i)
	}
	if i := c.intern("b"); i != 3 {
		t.Fatalf("intern(b) again = %d, want the same place", i)
	}
	if i := c.intern("e"); i != 2 {
		t.Fatalf("intern(e) = %d, want its decoded place 2", i)
	}
	if len(base.ids) != 3 || base.added != nil {
		t.Fatalf("the clone's ids reached the original: %v %v", base.ids, base.added)
	}
	if _, ok := base.find("b"); ok {
		t.Fatal("the original finds an id only its clone added")
	}
	// Two clones of one table append independently.
	d := base.clone()
	if i := d.intern("z"); i != 3 || d.at(3) != "z" || c.at(3) != "b" {
		t.Fatalf("clones share appends: c[3]=%q d[3]=%q", c.at(3), d.at(3))
	}
	got := c.internAll([]string{"e", "b", "a", "b", "f"})
	if !slices.Equal(got, []int32{0, 2, 3, 4}) || c.at(4) != "f" {
		t.Fatalf("internAll = %v (ids %v)", got, c.ids)
	}
	if c.internAll(nil) != nil {
		t.Fatal("internAll(nil) is not nil")
	}
	st := &deltaState{ids: c}
	if ids := st.memberIDs(&groupRec{users: got}); !slices.Equal(ids, []string{"a", "e", "b", "f"}) {
		t.Fatalf("memberIDs = %v", ids)
	}
}

package sync

import (
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
)

// FuzzGroupNames: whatever the names and ids, the mapping never panics,
// writes only valid, unique OpenFGA ids, and accounts for every group
// (written, or skipped with a reason).
func FuzzGroupNames(f *testing.F) {
	for _, s := range [][3]string{
		{"Sales Team", "sales  team", "-"}, {"a#b", "a:b", ""}, {"*", "ok", "_"}, {"R&D: Labs", "r&d: labs", "-"},
		{strings.Repeat("n", 300), "\t", ""}, {"Ünïcode Grüppe", "ünïcode grüppe", "-"}, {"", "x", "#"},
	} {
		f.Add(s[0], s[1], s[2], true)
	}
	f.Fuzz(func(t *testing.T, name1, name2, replace string, lower bool) {
		m := config.Default().Mapping
		m.Group.ReplaceWhitespace = replace
		m.Group.Lowercase = lower
		m.Nesting = "userset"
		mapper, err := NewMapper(m)
		if err != nil {
			t.Fatal(err)
		}
		s := &Snapshot{
			Users: []User{{ID: "u"}},
			Groups: []Group{
				{ID: "1", Name: name1, Users: []string{"u"}, Groups: []string{"2"}},
				{ID: "2", Name: name2, Users: []string{"u"}},
			},
		}
		d, err := mapper.Map(s)
		if err != nil {
			t.Fatal(err)
		}
		objects := map[string]bool{}
		for _, g := range d.Groups {
			if objects[g.Object] {
				t.Fatalf("two groups written to %s", g.Object)
			}
			objects[g.Object] = true
		}
		accounted := len(d.Groups)
		for _, sk := range d.Skipped {
			if sk.Kind == "group" {
				accounted++
			}
		}
		if accounted != 2 {
			t.Fatalf("groups unaccounted for: %+v %+v", d.Groups, d.Skipped)
		}
		for _, tu := range d.Members.Tuples() {
			typ, id, _ := strings.Cut(tu.Object, ":")
			if typ != "group" || idProblem(id) != "" || objectLengthProblem(tu.Object) != "" {
				t.Fatalf("invalid object written: %q", tu.Object)
			}
			if !objects[tu.Object] {
				t.Fatalf("tuple for an unmanaged object: %s", tu)
			}
		}
	})
}

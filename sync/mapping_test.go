package sync

import (
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
)

func mapping(edit func(*config.Mapping)) config.Mapping {
	m := config.Default().Mapping
	if edit != nil {
		edit(&m)
	}
	return m
}

func mustMap(t *testing.T, cfg config.Mapping, s *Snapshot) *Desired {
	t.Helper()
	m, err := NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.Map(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tupleStrings(ts []Tuple) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

func assertTuples(t *testing.T, got []Tuple, want ...string) {
	t.Helper()
	g := tupleStrings(got)
	if !slices.Equal(g, want) {
		t.Fatalf("tuples:\n got  %q\n want %q", g, want)
	}
}

func skipReasons(d *Desired) map[string]string {
	out := map[string]string{}
	for _, s := range d.Skipped {
		out[s.Kind+":"+s.ID] = s.Reason
	}
	return out
}

// nested: eng ⊃ platform ⊃ infra ⊃ eng (a cycle), eng has alice, platform bob, infra carol.
func nested() *Snapshot {
	return &Snapshot{
		Users: []User{{ID: "alice"}, {ID: "bob"}, {ID: "carol"}},
		Groups: []Group{
			{ID: "g1", Name: "eng", Users: []string{"alice"}, Groups: []string{"g2"}},
			{ID: "g2", Name: "platform", Users: []string{"bob"}, Groups: []string{"g3"}},
			{ID: "g3", Name: "infra", Users: []string{"carol"}, Groups: []string{"g1"}},
		},
	}
}

func TestNestingModes(t *testing.T) {
	t.Run("flatten follows the cycle and stops", func(t *testing.T) {
		d := mustMap(t, mapping(nil), nested())
		assertTuples(t, d.Members.Tuples(),
			"user:alice member group:eng", "user:bob member group:eng", "user:carol member group:eng",
			"user:alice member group:infra", "user:bob member group:infra", "user:carol member group:infra",
			"user:alice member group:platform", "user:bob member group:platform", "user:carol member group:platform",
		)
	})
	t.Run("userset writes subgroups as usersets", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.Nesting = "userset" }), nested())
		assertTuples(t, d.Members.Tuples(),
			"group:platform#member member group:eng", "user:alice member group:eng",
			"group:eng#member member group:infra", "user:carol member group:infra",
			"group:infra#member member group:platform", "user:bob member group:platform",
		)
	})
	t.Run("userset walks through unmanaged subgroups", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) {
			m.Nesting = "userset"
			m.Filters.Exclude = []config.Match{{Name: "platform"}}
		}), nested())
		// platform is not synced, so eng gets bob directly and infra as a userset.
		assertTuples(t, d.Members.Tuples(),
			"group:infra#member member group:eng", "user:alice member group:eng", "user:bob member group:eng",
			"group:eng#member member group:infra", "user:carol member group:infra",
		)
	})
	t.Run("direct ignores subgroups", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.Nesting = "direct" }), nested())
		assertTuples(t, d.Members.Tuples(), "user:alice member group:eng", "user:carol member group:infra", "user:bob member group:platform")
	})
	t.Run("self membership is reported, never written", func(t *testing.T) {
		s := &Snapshot{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "g", Name: "x", Users: []string{"a"}, Groups: []string{"g"}}}}
		d := mustMap(t, mapping(func(m *config.Mapping) { m.Nesting = "userset" }), s)
		assertTuples(t, d.Members.Tuples(), "user:a member group:x")
		if skipReasons(d)["member:g"] != ReasonSelfMember {
			t.Fatalf("skipped %+v", d.Skipped)
		}
	})
}

func TestFilters(t *testing.T) {
	s := &Snapshot{
		Users: []User{{ID: "a"}},
		Groups: []Group{
			{ID: "1", Name: "eng-backend", Users: []string{"a"}},
			{ID: "2", Name: "eng-frontend", Users: []string{"a"}},
			{ID: "3", Name: "sales", Users: []string{"a"}},
			{ID: "4", Name: "Domain Users", Users: []string{"a"}},
			{ID: "5", Name: "team-ops", Users: []string{"a"}},
		},
	}
	d := mustMap(t, mapping(func(m *config.Mapping) {
		m.Filters.Include = []config.Match{{Glob: "eng-*"}, {Regex: "^team-"}, {Name: "Domain Users"}}
		m.Filters.Exclude = []config.Match{{ID: "2"}}
	}), s)
	assertTuples(t, d.Members.Tuples(), "user:a member group:eng-backend", "user:a member group:team-ops")
	got := skipReasons(d)
	want := map[string]string{"group:2": ReasonExcluded, "group:3": ReasonNotIncluded, "group:4": ReasonDefaultExcluded}
	if len(got) != len(want) {
		t.Fatalf("skipped %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}

	d = mustMap(t, mapping(func(m *config.Mapping) { m.Filters.DefaultExcludes = false; m.Group.ReplaceWhitespace = "_" }), s)
	if !slices.Contains(tupleStrings(d.Members.Tuples()), "user:a member group:Domain_Users") {
		t.Fatalf("default excludes off should sync Domain Users: %q", tupleStrings(d.Members.Tuples()))
	}
}

func TestBadGroupNames(t *testing.T) {
	long := strings.Repeat("x", 251) // "group:" + 251 = 257 bytes
	s := &Snapshot{
		Users: []User{{ID: "a"}},
		Groups: []Group{
			{ID: "1", Name: "Sales Team", Users: []string{"a"}},
			{ID: "2", Name: "a#b", Users: []string{"a"}},
			{ID: "3", Name: "R&D: Labs", Users: []string{"a"}},
			{ID: "4", Name: long, Users: []string{"a"}},
			{ID: "5", Name: "*", Users: []string{"a"}},
			{ID: "6", Name: "tab\there", Users: []string{"a"}},
			{ID: "7", Name: "ok", Users: []string{"a"}},
		},
	}
	d := mustMap(t, mapping(nil), s)
	assertTuples(t, d.Members.Tuples(), "user:a member group:ok")
	for _, s := range d.Skipped {
		if s.Reason != ReasonInvalidObjectID {
			t.Errorf("group %s: reason %q", s.ID, s.Reason)
		}
		if !strings.Contains(s.Detail, "mapping.group") {
			t.Errorf("group %s: detail %q does not say what to change", s.ID, s.Detail)
		}
	}
	if len(d.Skipped) != 6 {
		t.Fatalf("want 6 skipped, got %+v", d.Skipped)
	}
	// The same tenant keyed by id writes every group.
	d = mustMap(t, mapping(func(m *config.Mapping) { m.Group.Key = "id" }), s)
	if d.Members.Len() != 7 || len(d.Skipped) != 0 {
		t.Fatalf("by id: %q %+v", tupleStrings(d.Members.Tuples()), d.Skipped)
	}
}

func TestDuplicateGroupsAreHeldNotMerged(t *testing.T) {
	s := &Snapshot{
		Users: []User{{ID: "a"}, {ID: "b"}},
		Groups: []Group{
			{ID: "1", Name: "Sales Team", Users: []string{"a"}},
			{ID: "2", Name: "sales  team", Users: []string{"b"}},
		},
	}
	d := mustMap(t, mapping(func(m *config.Mapping) { m.Group.Lowercase = true; m.Group.ReplaceWhitespace = "-" }), s)
	if d.Members.Len() != 0 {
		t.Fatalf("duplicates must not be written: %q", tupleStrings(d.Members.Tuples()))
	}
	if !d.HeldObjects["group:sales-team"] {
		t.Fatalf("held: %v", d.HeldObjects)
	}
	for _, sk := range d.Skipped {
		if sk.Reason != ReasonDuplicateObject || !strings.Contains(sk.Detail, `"Sales Team" (id 1)`) || !strings.Contains(sk.Detail, `"sales  team" (id 2)`) {
			t.Errorf("skip %+v", sk)
		}
	}
	// Existing tuples of the ambiguous object are withheld, not deleted.
	p := Diff(d, []Tuple{{User: "user:a", Relation: "member", Object: "group:sales-team"}}, (&Mapper{cfg: mapping(nil)}).Scope())
	if len(p.Deletes) != 0 || len(p.Withheld) != 1 {
		t.Fatalf("plan %+v", p)
	}
}

func TestUserKeys(t *testing.T) {
	s := &Snapshot{
		Users: []User{
			{ID: "1", UPN: "Alice@Contoso.example", Mail: "alice@contoso.example", Attributes: map[string]string{"employeeId": "E1"}},
			{ID: "2", UPN: "bob@contoso.example", Disabled: true},
			{ID: "3", UPN: "guest#EXT#@contoso.example", Mail: "g@fabrikam.example", Guest: true},
			{ID: "4", UPN: "no mail@contoso.example"},
			{ID: "5", UPN: "ALICE@contoso.example"},
		},
		Groups: []Group{{ID: "g", Name: "all", Users: []string{"1", "2", "3", "4", "5"}}},
	}
	t.Run("upn lowercased: duplicates are held", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.User.Key = "upn"; m.User.Lowercase = true }), s)
		assertTuples(t, d.Members.Tuples()) // 1 and 5 collide, 2 disabled, 3 has '#', 4 has a space
		r := skipReasons(d)
		want := map[string]string{"user:1": ReasonDuplicateUser, "user:5": ReasonDuplicateUser, "user:2": ReasonDisabled,
			"user:3": ReasonInvalidUserID, "user:4": ReasonInvalidUserID}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("%s: %q, want %q", k, r[k], v)
			}
		}
		if !d.HeldUsers["user:alice@contoso.example"] {
			t.Errorf("held users %v", d.HeldUsers)
		}
	})
	t.Run("mail, guests skipped, disabled kept", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.User.Key = "mail"; m.User.SkipGuests = true; m.User.SkipDisabled = false }), s)
		assertTuples(t, d.Members.Tuples(), "user:alice@contoso.example member group:all")
		r := skipReasons(d)
		if r["user:3"] != ReasonGuest || r["user:2"] != ReasonMissingKey || r["user:4"] != ReasonMissingKey {
			t.Errorf("skipped %v", r)
		}
	})
	t.Run("username is the login name (upn by another name)", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.User.Key = "username"; m.User.SkipDisabled = false }), s)
		assertTuples(t, d.Members.Tuples(), "user:ALICE@contoso.example member group:all", "user:Alice@Contoso.example member group:all", "user:bob@contoso.example member group:all")
	})
	t.Run("attribute", func(t *testing.T) {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.User.Key = "attribute:employeeId"; m.User.Type = "employee" }), s)
		assertTuples(t, d.Members.Tuples(), "employee:E1 member group:all")
	})
}

func TestUnknownMembersReported(t *testing.T) {
	s := &Snapshot{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "g", Name: "x", Users: []string{"a", "ghost"}, Groups: []string{"nope"}}}}
	d := mustMap(t, mapping(nil), s)
	assertTuples(t, d.Members.Tuples(), "user:a member group:x")
	n := 0
	for _, sk := range d.Skipped {
		if sk.Reason == ReasonUnknownMember {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("skipped %+v", d.Skipped)
	}
}

func TestMalformedSnapshotIsAnError(t *testing.T) {
	m, _ := NewMapper(mapping(nil))
	for _, s := range []*Snapshot{
		{Groups: []Group{{ID: "", Name: "x"}}},
		{Groups: []Group{{ID: "1", Name: "x"}, {ID: "1", Name: "y"}}},
		{Users: []User{{ID: "a"}, {ID: "a"}}},
		{Users: []User{{ID: "b"}, {ID: "a"}, {ID: "b"}}},
		{Users: []User{{ID: ""}}},
		{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "1", Name: "x", UserIndexes: []int32{1}}}},
		{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "1", Name: "x", UserIndexes: []int32{-1}}}},
		{Users: []User{{ID: "a"}, {ID: "b"}}, Groups: []Group{{ID: "1", Name: "x", Users: []string{"a"}, UserIndexes: []int32{1}}}},
	} {
		if _, err := m.Map(s); err == nil {
			t.Errorf("no error for %+v", s)
		}
	}
}

func TestScope(t *testing.T) {
	m, _ := NewMapper(mapping(nil))
	s := m.Scope()
	in := []Tuple{{"user:a", "member", "group:x"}, {"group:y#member", "member", "group:x"}}
	out := []Tuple{{"user:a", "owner", "group:x"}, {"user:a", "member", "doc:x"}, {"bot:a", "member", "group:x"},
		{"group:y#owner", "member", "group:x"}, {"team:y#member", "member", "group:x"}}
	for _, tu := range in {
		if !s.Contains(tu) {
			t.Errorf("%s should be in scope", tu)
		}
	}
	for _, tu := range out {
		if s.Contains(tu) {
			t.Errorf("%s should be outside scope", tu)
		}
	}
	if ws := m.WriteScope(); !slices.Equal(ws.UserTypes, []string{"user"}) {
		t.Errorf("write scope %v", ws.UserTypes)
	}
}

func TestGroupsReadOnlyForNesting(t *testing.T) {
	s := &Snapshot{
		Users: []User{{ID: "a"}, {ID: "b"}},
		Groups: []Group{
			{ID: "1", Name: "app-users", Users: []string{"a"}, Groups: []string{"2"}},
			{ID: "2", Name: "contractors", Users: []string{"b"}, NotSynced: "outside source.msgraph.groups.filter"},
		},
		Skipped: []Skip{{Kind: "member", ID: "1", Reason: ReasonNotUserOrGroup, Detail: "1 device"}},
	}
	for _, mode := range []string{"flatten", "userset"} {
		d := mustMap(t, mapping(func(m *config.Mapping) { m.Nesting = mode }), s)
		assertTuples(t, d.Members.Tuples(), "user:a member group:app-users", "user:b member group:app-users")
		r := skipReasons(d)
		if r["group:2"] != ReasonSourceFiltered || r["member:1"] != ReasonNotUserOrGroup {
			t.Fatalf("%s: skipped %+v", mode, d.Skipped)
		}
	}
}

// OpenFGA counts an object's characters, not its bytes: a 250-character
// name with umlauts (500 bytes) is a valid object and is synced.
func TestLongNonASCIIGroupNameIsSynced(t *testing.T) {
	name := strings.Repeat("ü", 250)
	s := &Snapshot{Users: []User{{ID: "a"}}, Groups: []Group{
		{ID: "1", Name: name, Users: []string{"a"}},
		{ID: "2", Name: name + "ü", Users: []string{"a"}},
		{ID: "3", Name: "team\u00a0red", Users: []string{"a"}},
	}}
	d := mustMap(t, mapping(nil), s)
	assertTuples(t, d.Members.Tuples(), "user:a member group:"+name)
	if len(d.Skipped) != 2 || !strings.Contains(d.Skipped[0].Detail+d.Skipped[1].Detail, "257 characters, over OpenFGA's 256") {
		t.Fatalf("skipped %+v", d.Skipped)
	}
	// replace_whitespace replaces a no-break space like a space.
	d = mustMap(t, mapping(func(m *config.Mapping) { m.Group.ReplaceWhitespace = "-" }), s)
	if !slices.Contains(tupleStrings(d.Members.Tuples()), "user:a member group:team-red") {
		t.Fatalf("tuples %q", tupleStrings(d.Members.Tuples()))
	}
}

// A snapshot with a user index past its users: cutting a slice from it
// does not panic, and the mapping refuses it, naming the group; an empty
// index list beside ids is not both forms.
func TestBadUserIndexInASlice(t *testing.T) {
	bad := &Snapshot{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "g1", Name: "x", UserIndexes: []int32{0, 7}}}}
	sl := SliceSnapshot(bad, Slice{Groups: []string{"x"}})
	m, _ := NewMapper(mapping(nil))
	if _, err := m.Map(sl); err == nil || !strings.Contains(err.Error(), `"g1"`) {
		t.Fatalf("Map of a slice with a bad index: %v", err)
	}
	ok := &Snapshot{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "g1", Name: "x", Users: []string{"a"}, UserIndexes: []int32{}}}}
	if d, err := m.Map(ok); err != nil || d.Members.Len() != 1 {
		t.Fatalf("ids beside an empty index list: %v", err)
	}
}

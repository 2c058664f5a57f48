package sync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDiffIgnoresTuplesOutsideScope(t *testing.T) {
	m, _ := NewMapper(mapping(nil))
	d := mustMap(t, mapping(nil), &Snapshot{Users: []User{{ID: "a"}}, Groups: []Group{{ID: "1", Name: "x", Users: []string{"a"}}}})
	existing := []Tuple{
		{"user:b", "member", "group:x"},         // in scope, not desired: delete
		{"user:b", "owner", "group:x"},          // other relation
		{"user:b", "member", "doc:x"},           // other type
		{"bot:b", "member", "group:x"},          // other user type
		{"user:a", "member", "group:x"},         // already there
		{"user:a", "member", "group:x"},         // repeated by a sink: counted once
		{"group:z#member", "member", "group:x"}, // stale userset: delete
	}
	p := Diff(d, existing, m.Scope())
	if len(p.Adds) != 0 {
		t.Errorf("adds %v", p.Adds)
	}
	if got := tupleStrings(p.Deletes); strings.Join(got, "|") != "group:z#member member group:x|user:b member group:x" {
		t.Errorf("deletes %q", got)
	}
	if p.Existing != 3 {
		t.Errorf("existing %d", p.Existing)
	}
}

func testReport(t *testing.T) *Report {
	m, _ := NewMapper(mapping(nil))
	s := &Snapshot{
		Users: []User{{ID: "a"}, {ID: "b"}, {ID: "c", Disabled: true}},
		Groups: []Group{
			{ID: "1", Name: "eng", Users: []string{"a", "b", "c"}},
			{ID: "2", Name: "Bad Name", Users: []string{"a"}},
			{ID: "3", Name: "ops", Users: []string{"b"}},
		},
	}
	d, err := m.Map(s)
	if err != nil {
		t.Fatal(err)
	}
	p := Diff(d, []Tuple{{"user:z", "member", "group:old"}, {"user:b", "member", "group:ops"}}, m.Scope())
	return NewReport("plan", p, nil)
}

func TestReportJSONIsStable(t *testing.T) {
	var a, b bytes.Buffer
	if err := testReport(t).Render(&a, "json"); err != nil {
		t.Fatal(err)
	}
	if err := testReport(t).Render(&b, "json"); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatal("same inputs, different JSON")
	}
	var doc struct {
		FormatVersion int `json:"format_version"`
		Summary       struct {
			ToAdd, ToDelete int
		}
		Changes []GroupChange
		Skipped []Skip
	}
	if err := json.Unmarshal(a.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.FormatVersion != 1 || len(doc.Changes) != 2 || doc.Changes[0].Object != "group:eng" || doc.Changes[1].Object != "group:old" {
		t.Fatalf("%s", a.String())
	}
	if strings.Join(doc.Changes[0].Add, ",") != "user:a,user:b" || strings.Join(doc.Changes[1].Delete, ",") != "user:z" {
		t.Fatalf("%s", a.String())
	}
}

func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := testReport(t).Render(&b, "text"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Plan: 2 to add, 1 to delete, in 2 groups.",
		"group:eng  (\"eng\", id 1)\n    + user:a\n    + user:b\n",
		"group:old  (not in the source)\n    - user:z\n",
		"Skipped: group invalid_object_id 1, user disabled 1",
		`group "Bad Name" (id 2): name "Bad Name" cannot be an OpenFGA object id: it contains whitespace`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := testReport(t).Render(&b, "markdown"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `group:eng` (eng) | +2 | −0 |", "<details><summary>`group:eng` (eng): +2 −0</summary>", "- add `user:a`\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
	if err := testReport(t).Render(&b, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

// Opaque user ids get a readable name beside them; a plan too large for a
// pull-request comment keeps its summary and says what it cut.
func TestReportForReviewers(t *testing.T) {
	m, _ := NewMapper(mapping(nil))
	s := &Snapshot{Users: []User{{ID: "1dd0d2c2", UPN: "alice@contoso.example"}}, Groups: []Group{{ID: "1", Name: "eng", Users: []string{"1dd0d2c2"}}}}
	for i := range 3000 {
		id := fmt.Sprintf("u%04d", i)
		s.Users = append(s.Users, User{ID: id, UPN: id + "@contoso.example"})
		s.Groups = append(s.Groups, Group{ID: fmt.Sprintf("g%d", i%40+2), Name: fmt.Sprintf("team-%02d", i%40)})
	}
	s.Groups = s.Groups[:41]
	for i := range 3000 {
		s.Groups[1+i%40].Users = append(s.Groups[1+i%40].Users, fmt.Sprintf("u%04d", i))
	}
	d, err := m.Map(s)
	if err != nil {
		t.Fatal(err)
	}
	rep := NewReport("plan", Diff(d, nil, m.Scope()), nil)
	var text, md, js bytes.Buffer
	_ = rep.Render(&text, "text")
	_ = rep.Render(&md, "markdown")
	_ = rep.Render(&js, "json")
	if !strings.Contains(text.String(), "+ user:1dd0d2c2 (alice@contoso.example)") {
		t.Error("the text report does not name the opaque user")
	}
	if !strings.Contains(js.String(), `"user:1dd0d2c2": "alice@contoso.example"`) {
		t.Error("the JSON report has no user_names")
	}
	out := md.String()
	if len(out) > 65_536 || !strings.Contains(out, "Cut to fit a pull-request comment") || !strings.Contains(out, "| `group:team-39` (team-39) | +75 | −0 |") {
		t.Fatalf("markdown of %d characters:\n%.2000s", len(out), out)
	}
}

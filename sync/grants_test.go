package sync

import (
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
)

func grantTenant() *Snapshot {
	return &Snapshot{
		Users: []User{{ID: "a"}, {ID: "b"}, {ID: "c"}},
		Groups: []Group{
			{ID: "1", Name: "team-red", Users: []string{"a"}, Groups: []string{"3"}},
			{ID: "2", Name: "team-blue", Users: []string{"b"}},
			{ID: "3", Name: "red-interns", Users: []string{"c"}},
			{ID: "4", Name: "ops", Users: []string{"a", "b"}},
		},
	}
}

func withGrants(rules ...config.GrantRule) config.Mapping {
	return mapping(func(m *config.Mapping) { m.Grants = rules })
}

func TestGrantRulesExpand(t *testing.T) {
	d := mustMap(t, withGrants(
		config.GrantRule{Name: "team-projects", Match: config.Match{Regex: "^team-(.+)$"},
			Tuples: []string{"group:{object}#member viewer project:{1}"}},
		config.GrantRule{Name: "ops-servers", Match: config.Match{Glob: "o*"},
			Tuples: []string{"user:{user} operator server:prod-{1}", "group:{object}#member admin server:{name}"}},
	), grantTenant())
	if len(d.Grants) != 3 {
		t.Fatalf("want 3 grant scopes, got %+v", d.Grants)
	}
	// Sets are sorted by type, relation, user type.
	assertTuples(t, d.Grants[0].Tuples,
		"group:team-blue#member viewer project:blue",
		"group:team-red#member viewer project:red")
	if !d.Grants[0].Usersets || d.Grants[0].Scope.ObjectType != "project" || d.Grants[0].Rules[0] != "team-projects" {
		t.Errorf("set 0: %+v", d.Grants[0])
	}
	assertTuples(t, d.Grants[1].Tuples, "group:ops#member admin server:ops")
	assertTuples(t, d.Grants[2].Tuples, "user:a operator server:prod-ps", "user:b operator server:prod-ps")
	if d.Grants[2].Usersets {
		t.Errorf("a {user} rule is not a userset scope")
	}
}

func TestGrantUserTemplatesReachNestedMembers(t *testing.T) {
	// Membership in userset mode, but a flat grant still reaches c, who is
	// in team-red only through red-interns.
	cfg := withGrants(config.GrantRule{Name: "red", Match: config.Match{Name: "team-red"}, Tuples: []string{"user:{user} viewer project:red"}})
	cfg.Nesting = "userset"
	d := mustMap(t, cfg, grantTenant())
	assertTuples(t, d.Grants[0].Tuples, "user:a viewer project:red", "user:c viewer project:red")
}

func TestGrantRuleProblems(t *testing.T) {
	cfg := withGrants(
		config.GrantRule{Name: "nothing", Match: config.Match{Name: "no-such-group"}, Tuples: []string{"group:{object}#member viewer project:x"}},
		config.GrantRule{Name: "spaces", Match: config.Match{Glob: "Sales*"}, Tuples: []string{"group:{object}#member viewer project:{name}"}},
		config.GrantRule{Name: "a", Match: config.Match{Name: "ops"}, Tuples: []string{"group:{object}#member viewer project:all"}},
		config.GrantRule{Name: "b", Match: config.Match{Glob: "op?"}, Tuples: []string{"group:{object}#member viewer project:all"}},
	)
	cfg.Group.ReplaceWhitespace = "-"
	snap := grantTenant()
	snap.Groups = append(snap.Groups, Group{ID: "5", Name: "Sales Team", Users: []string{"a"}})
	d := mustMap(t, cfg, snap)
	reasons := map[string]int{}
	for _, s := range d.Skipped {
		if s.Kind == "grant" {
			reasons[s.Reason]++
			if !strings.Contains(s.Detail, `"`) {
				t.Errorf("detail %q does not name the rule", s.Detail)
			}
		}
	}
	if reasons[ReasonGrantNoMatch] != 1 || reasons[ReasonGrantDuplicate] != 1 || reasons[ReasonGrantInvalid] != 1 {
		t.Errorf("reasons %v", reasons)
	}
	// A template with a space in it is refused before any mapping.
	if err := config.CheckGrantTemplate("group:{object}#member viewer project:{1} {2}"); err == nil {
		t.Error("a four-field template passed")
	}
}

func TestGrantRuleCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		rule config.GrantRule
		want string
	}{
		{config.GrantRule{Name: "caps", Match: config.Match{Regex: "^team-(.+)$"}, Tuples: []string{"group:{object}#member viewer project:{2}"}}, "only 1 capture"},
		{config.GrantRule{Name: "glob", Match: config.Match{Glob: "team-*"}, Tuples: []string{"group:{object}#member viewer project:{2}"}}, "only 1 capture"},
		{config.GrantRule{Name: "exact", Match: config.Match{Name: "ops"}, Tuples: []string{"group:{object}#member viewer project:{1}"}}, "only 0 capture"},
		{config.GrantRule{Name: "bad", Match: config.Match{Name: "ops"}, Tuples: []string{"group:{nope}#member viewer project:x"}}, "unknown placeholder {nope}"},
		{config.GrantRule{Name: "where", Match: config.Match{Name: "ops"}, Tuples: []string{"group:{object}#member viewer project:{user}"}}, "{user} belongs in the user field"},
		{config.GrantRule{Name: "re", Match: config.Match{Regex: "("}, Tuples: []string{"group:{object}#member viewer project:x"}}, "match.regex"},
		{config.GrantRule{Name: "other", Match: config.Match{Name: "ops"}, Tuples: []string{"team:{name}#member viewer project:x"}}, `must name the group as "group:{object}#member"`},
		{config.GrantRule{Name: "self", Match: config.Match{Name: "ops"}, Tuples: []string{"user:{user} member group:all"}}, "the membership itself"},
	} {
		_, err := NewMapper(withGrants(tc.rule))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.rule.Name) {
			t.Errorf("rule %s: err %v, want it to name the rule and say %q", tc.rule.Name, err, tc.want)
		}
	}
}

func TestGrantsConfigValidation(t *testing.T) {
	c := config.Default()
	c.Mapping.Grants = []config.GrantRule{
		{Name: "x", Match: config.Match{Name: "a"}, Tuples: []string{"group:{object}#member viewer project:x"}},
		{Name: "x", Match: config.Match{}, Tuples: nil},
	}
	err := c.Validate()
	for _, want := range []string{"mapping.grants[1].name", "mapping.grants[1].match", "mapping.grants[1].tuples"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
}

package config

import (
	"fmt"
	"regexp"
	"strings"
)

// GrantRule turns source groups into tuples on other objects: an
// application's grants ("the members of team-red can view project red"),
// where the membership tuples alone are not enough.
//
//	mapping:
//	  grants:
//	    - name: team-projects
//	      match: {regex: "^team-(.+)$"}
//	      tuples: ["group:{object}#member viewer project:{1}"]
//	      only_existing: true
type GrantRule struct {
	// Name identifies the rule in reports and errors; unique.
	Name string `yaml:"name"`
	// Match chooses the groups, among those the mapping syncs, by exact
	// name, glob, regex (its groups are captures) or id.
	Match Match `yaml:"match"`
	// Tuples are templates "<user> <relation> <object>". Placeholders:
	// {object} the group's OpenFGA id (its key), {name} its display name,
	// {id} its stable id in the source, {0} the whole match, {1}.. the
	// regex's (or glob's wildcards') captures, and {user}: the user key of
	// each of the group's members, all nested members included, one tuple
	// per member (for models whose grants accept only users).
	Tuples []string `yaml:"tuples"`
	// OnlyExisting writes a grant only on objects that already have tuples
	// in OpenFGA (the application created them); others are reported.
	OnlyExisting bool `yaml:"only_existing"`
}

// placeholder is a template's {…}.
var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// GrantPlaceholders are the named placeholders a grant template may use,
// besides capture numbers.
var GrantPlaceholders = []string{"object", "name", "id", "user"}

// validateGrants checks the rules' shape; the model check (types and
// relations exist) happens against OpenFGA in check and plan.
func validateGrants(rules []GrantRule, add func(field, format string, args ...any)) {
	names := map[string]int{}
	for i, r := range rules {
		field := fmt.Sprintf("mapping.grants[%d]", i)
		if r.Name == "" {
			add(field+".name", "every grant rule needs a name, to be named in reports and errors")
		} else if j, dup := names[r.Name]; dup {
			add(field+".name", "%q is also the name of mapping.grants[%d]; names must be unique", r.Name, j)
		} else {
			names[r.Name] = i
		}
		if err := r.Match.Validate(); err != nil {
			add(field+".match", "rule %q: %v", r.Name, err)
		}
		if len(r.Tuples) == 0 {
			add(field+".tuples", "rule %q has no tuple templates; add one such as \"group:{object}#member viewer project:{1}\"", r.Name)
		}
		for j, t := range r.Tuples {
			if err := CheckGrantTemplate(t); err != nil {
				add(fmt.Sprintf("%s.tuples[%d]", field, j), "rule %q: %v", r.Name, err)
			}
		}
	}
}

// CheckGrantTemplate checks a template's shape: three fields, each of the
// form type:id (the user may be a userset type:id#relation), known
// placeholders, and {user} only in the user field.
func CheckGrantTemplate(t string) error {
	f := strings.Fields(t)
	if len(f) != 3 || strings.Join(f, " ") != t {
		return fmt.Errorf("template %q: write \"<user> <relation> <object>\" separated by single spaces, e.g. \"group:{object}#member viewer project:{1}\"", t)
	}
	user, relation, object := f[0], f[1], f[2]
	if strings.ContainsAny(relation, "{}:#@") {
		return fmt.Errorf("template %q: the relation %q must be a plain relation name of the model", t, relation)
	}
	for _, part := range []struct{ what, s string }{{"user", user}, {"object", object}} {
		typ, _, ok := strings.Cut(part.s, ":")
		if !ok || typ == "" || strings.ContainsAny(typ, "{}") {
			return fmt.Errorf("template %q: the %s %q must start with a fixed type, as in project:{1}", t, part.what, part.s)
		}
		for _, m := range placeholder.FindAllStringSubmatch(part.s, -1) {
			name := m[1]
			switch {
			case name == "user" && part.what == "object":
				return fmt.Errorf("template %q: {user} belongs in the user field", t)
			case name == "object", name == "name", name == "id", name == "user":
			case isDigits(name):
			default:
				return fmt.Errorf("template %q: unknown placeholder {%s}; use {object}, {name}, {id}, {user} or a capture number such as {1}", t, name)
			}
		}
		if strings.Count(part.s, "{") != strings.Count(part.s, "}") {
			return fmt.Errorf("template %q: unbalanced braces in %q", t, part.s)
		}
	}
	if _, rel, ok := strings.Cut(object, "#"); ok {
		return fmt.Errorf("template %q: the object may not have a relation (#%s)", t, rel)
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

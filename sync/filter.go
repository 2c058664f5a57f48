package sync

import (
	"fmt"
	"path"
	"regexp"

	"github.com/groupsync/groupsync/config"
)

// rule is one compiled filter rule; desc names it in reports.
type rule struct {
	desc  string
	match func(Group) bool
}

func compileRules(ms []config.Match) ([]rule, error) {
	rules := make([]rule, 0, len(ms))
	for _, m := range ms {
		switch {
		case m.Name != "":
			rules = append(rules, rule{fmt.Sprintf("name %q", m.Name), func(g Group) bool { return g.Name == m.Name }})
		case m.ID != "":
			rules = append(rules, rule{fmt.Sprintf("id %q", m.ID), func(g Group) bool { return g.ID == m.ID }})
		case m.Glob != "":
			if _, err := path.Match(m.Glob, ""); err != nil {
				return nil, fmt.Errorf("glob %q: %w", m.Glob, err)
			}
			rules = append(rules, rule{fmt.Sprintf("glob %q", m.Glob), func(g Group) bool {
				ok, _ := path.Match(m.Glob, g.Name)
				return ok
			}})
		case m.Regex != "":
			re, err := regexp.Compile(m.Regex)
			if err != nil {
				return nil, fmt.Errorf("regex %q: %w", m.Regex, err)
			}
			rules = append(rules, rule{fmt.Sprintf("regex %q", m.Regex), func(g Group) bool { return re.MatchString(g.Name) }})
		default:
			return nil, fmt.Errorf("filter rule sets none of name, glob, regex, id")
		}
	}
	return rules, nil
}

// firstMatch returns the first rule that matches g.
func firstMatch(rules []rule, g Group) (rule, bool) {
	for _, r := range rules {
		if r.match(g) {
			return r, true
		}
	}
	return rule{}, false
}

package sync

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/groupsync/groupsync/config"
)

// ReportFormatVersion is the version of the JSON document. It changes only
// when a field is removed or changes meaning; new fields may appear.
const ReportFormatVersion = 1

// Report is one run's outcome, the same structure for plan and apply,
// rendered as text, JSON or Markdown.
type Report struct {
	FormatVersion int             `json:"format_version"`
	Command       string          `json:"command"` // "plan" or "apply"
	Scope         ReportScope     `json:"scope"`
	Summary       Summary         `json:"summary"`
	Changes       []GroupChange   `json:"changes"`
	Withheld      []Withheld      `json:"withheld"`
	Skipped       []Skip          `json:"skipped"`
	Ownership     ReportOwnership `json:"ownership"`
	Guard         *GuardTrip      `json:"guard,omitempty"`       // a guard stopped (apply) or would stop (plan) the run
	SourceRead    *SourceRead     `json:"source_read,omitempty"` // how an incremental source read
	TargetRead    *TargetRead     `json:"target_read,omitempty"` // how OpenFGA was read, when sync.incremental is on
	Result        *ApplyResult    `json:"result,omitempty"`      // apply only
	// Grants are the grant rules' scopes (mapping.grants), planned like
	// membership; absent without grant rules.
	Grants []ReportGrantScope `json:"grants,omitempty"`
	// ManagedByGrants (target-driven mode) lists the groups managed only
	// because an application's grants name them, with those grants.
	ManagedByGrants []GrantReference `json:"managed_by_grants,omitempty"`
	// UserNames gives a readable name (UPN, else mail) for each user in
	// Changes and Withheld whose OpenFGA id is an opaque key.
	UserNames map[string]string `json:"user_names,omitempty"`
	// Slice (a targeted run, RunSlice) is what the run covered; absent for
	// a full run.
	Slice *ReportSlice `json:"slice,omitempty"`
}

// ReportGrantScope is one grant scope and the rules that write into it.
type ReportGrantScope struct {
	ObjectType string   `json:"object_type"`
	Relation   string   `json:"relation"`
	UserType   string   `json:"user_type"`
	Rules      []string `json:"rules"`
	Desired    int      `json:"desired_tuples"`
}

// GrantReference is a group and the grants that name it.
type GrantReference struct {
	Object string   `json:"object"`
	Grants []string `json:"grants"`
}

// ReportOwnership is how the run was bounded and what it claimed or released.
type ReportOwnership struct {
	Mode     config.OwnershipMode `json:"mode"`
	Policy   config.Policy        `json:"policy"`
	Instance string               `json:"instance,omitempty"`
	Claims   []string             `json:"claims"`
	Releases []string             `json:"releases"`
}

// ReportScope is the managed scope, for the reader.
type ReportScope struct {
	ObjectType string   `json:"object_type"`
	Relation   string   `json:"relation"`
	UserTypes  []string `json:"user_types"`
}

// Summary counts everything once.
type Summary struct {
	SourceGroups   int `json:"source_groups"`
	SourceUsers    int `json:"source_users"`
	ManagedGroups  int `json:"managed_groups"`
	DesiredTuples  int `json:"desired_tuples"`
	ExistingTuples int `json:"existing_tuples"`
	ToAdd          int `json:"to_add"`
	ToDelete       int `json:"to_delete"`
	Withheld       int `json:"withheld"`
	Skipped        int `json:"skipped"`
}

// GroupChange is the plan for one OpenFGA object. Add and Delete hold the
// tuples' users; the relation is the scope's, or for a grant Relation.
type GroupChange struct {
	Object    string   `json:"object"`
	Relation  string   `json:"relation,omitempty"` // a grant's relation; empty for membership
	Rules     []string `json:"rules,omitempty"`    // the grant rules that want the added tuples
	GroupID   string   `json:"group_id,omitempty"`
	GroupName string   `json:"group_name,omitempty"`
	Add       []string `json:"add"`
	Delete    []string `json:"delete"`
}

// NewReport builds the report of a plan; result is nil for "plan".
func NewReport(command string, p *Plan, result *ApplyResult) *Report {
	r := &Report{
		FormatVersion: ReportFormatVersion,
		Command:       command,
		Scope:         ReportScope{ObjectType: p.Scope.ObjectType, Relation: p.Scope.Relation, UserTypes: p.Scope.UserTypes},
		Changes:       groupChanges(p),
		Withheld:      nonNil(p.Withheld),
		Skipped:       nonNil(p.Desired.Skipped),
		Guard:         p.Guard,
		Ownership:     ReportOwnership{Mode: config.DefaultOwnershipMode, Policy: config.DefaultPolicy, Claims: nonNil(p.Claims), Releases: nonNil(p.Releases)},
		Summary: Summary{
			SourceGroups:   p.Desired.SourceGroups,
			SourceUsers:    p.Desired.SourceUsers,
			ManagedGroups:  len(p.Desired.Groups),
			DesiredTuples:  p.Desired.Members.Len(),
			ExistingTuples: p.Existing,
			ToAdd:          len(p.Adds),
			ToDelete:       len(p.Deletes),
			Withheld:       len(p.Withheld),
			Skipped:        len(p.Desired.Skipped),
		},
	}
	for _, set := range p.Desired.Grants {
		r.Grants = append(r.Grants, ReportGrantScope{ObjectType: set.Scope.ObjectType, Relation: set.Scope.Relation,
			UserType: set.Scope.UserTypes[0], Rules: set.Rules, Desired: len(set.Tuples)})
	}
	for obj, ts := range p.GrantedBy {
		ref := GrantReference{Object: obj}
		for _, t := range ts {
			ref.Grants = append(ref.Grants, t.String())
		}
		r.ManagedByGrants = append(r.ManagedByGrants, ref)
	}
	slices.SortFunc(r.ManagedByGrants, func(a, b GrantReference) int { return strings.Compare(a.Object, b.Object) })
	if labels := p.Desired.UserLabels; labels.Len() > 0 {
		name := func(user string) {
			if l, ok := labels.Label(user); ok {
				if r.UserNames == nil {
					r.UserNames = map[string]string{}
				}
				r.UserNames[user] = l
			}
		}
		for _, c := range r.Changes {
			for _, u := range c.Add {
				name(u)
			}
			for _, u := range c.Delete {
				name(u)
			}
		}
		for _, w := range r.Withheld {
			name(w.Tuple.User)
		}
	}
	if result != nil {
		res := *result
		res.Failed = slices.Clone(res.Failed)
		slices.SortFunc(res.Failed, func(a, b TupleError) int {
			if c := a.Tuple.Compare(b.Tuple); c != 0 {
				return c
			}
			return strings.Compare(a.Op, b.Op)
		})
		r.Result = &res
	}
	return r
}

// userLabel is " (name)" for a user with a readable name, else "".
func (r *Report) userLabel(user string) string {
	if l, ok := r.UserNames[user]; ok {
		return " (" + l + ")"
	}
	return ""
}

// Pending reports whether the plan has changes to make.
func (r *Report) Pending() bool { return r.Summary.ToAdd+r.Summary.ToDelete > 0 }

func groupChanges(p *Plan) []GroupChange {
	byKey := map[string]*GroupChange{}
	get := func(t Tuple) *GroupChange {
		key, rel := t.Object, ""
		if t.Relation != p.Scope.Relation || !strings.HasPrefix(t.Object, p.Scope.ObjectType+":") {
			key, rel = t.Object+"#"+t.Relation, t.Relation
		}
		if c := byKey[key]; c != nil {
			return c
		}
		c := &GroupChange{Object: t.Object, Relation: rel, Add: []string{}, Delete: []string{}}
		byKey[key] = c
		return c
	}
	ruleOf := func(t Tuple) string {
		for _, set := range p.Desired.Grants {
			if r, ok := set.RuleOf[t]; ok {
				return r
			}
		}
		return ""
	}
	for _, t := range p.Adds {
		c := get(t)
		c.Add = append(c.Add, t.User)
		if c.Relation != "" {
			if r := ruleOf(t); r != "" && !slices.Contains(c.Rules, r) {
				c.Rules = append(c.Rules, r)
			}
		}
	}
	for _, t := range p.Deletes {
		c := get(t)
		c.Delete = append(c.Delete, t.User)
	}
	for _, g := range p.Desired.Groups {
		if c := byKey[g.Object]; c != nil {
			c.GroupID, c.GroupName = g.ID, g.Name
		}
	}
	out := make([]GroupChange, 0, len(byKey))
	for _, c := range byKey {
		slices.Sort(c.Rules)
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b GroupChange) int {
		return cmpStrings(a.Object, b.Object, a.Relation, b.Relation)
	})
	return out
}

func nonNil[E any](s []E) []E {
	if s == nil {
		return []E{}
	}
	return s
}

// Formats lists the report formats Render accepts.
var Formats = []string{"text", "json", "markdown"}

// Render writes the report in format ("text", "json" or "markdown").
func (r *Report) Render(w io.Writer, format string) error {
	switch format {
	case "json":
		return r.renderJSON(w)
	case "text":
		return r.renderText(w)
	case "markdown", "md":
		return r.renderMarkdown(w)
	}
	return fmt.Errorf("unknown output format %q; use one of %s", format, strings.Join(Formats, ", "))
}

package sync

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
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
	Result        *ApplyResult    `json:"result,omitempty"`      // apply only
}

// ReportOwnership is how the run was bounded and what it claimed or released.
type ReportOwnership struct {
	Mode     string   `json:"mode"`   // owned | authoritative | target-driven
	Policy   string   `json:"policy"` // sync | add-only
	Instance string   `json:"instance,omitempty"`
	Claims   []string `json:"claims"`
	Releases []string `json:"releases"`
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
// tuples' users; the relation is the scope's.
type GroupChange struct {
	Object    string   `json:"object"`
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
		Ownership:     ReportOwnership{Mode: "authoritative", Policy: "sync", Claims: nonNil(p.Claims), Releases: nonNil(p.Releases)},
		Summary: Summary{
			SourceGroups:   p.Desired.SourceGroups,
			SourceUsers:    p.Desired.SourceUsers,
			ManagedGroups:  len(p.Desired.Groups),
			DesiredTuples:  len(p.Desired.Tuples),
			ExistingTuples: p.Existing,
			ToAdd:          len(p.Adds),
			ToDelete:       len(p.Deletes),
			Withheld:       len(p.Withheld),
			Skipped:        len(p.Desired.Skipped),
		},
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

// Pending reports whether the plan has changes to make.
func (r *Report) Pending() bool { return r.Summary.ToAdd+r.Summary.ToDelete > 0 }

func groupChanges(p *Plan) []GroupChange {
	byObject := map[string]*GroupChange{}
	get := func(obj string) *GroupChange {
		if c := byObject[obj]; c != nil {
			return c
		}
		c := &GroupChange{Object: obj, Add: []string{}, Delete: []string{}}
		byObject[obj] = c
		return c
	}
	for _, t := range p.Adds {
		c := get(t.Object)
		c.Add = append(c.Add, t.User)
	}
	for _, t := range p.Deletes {
		c := get(t.Object)
		c.Delete = append(c.Delete, t.User)
	}
	for _, g := range p.Desired.Groups {
		if c := byObject[g.Object]; c != nil {
			c.GroupID, c.GroupName = g.ID, g.Name
		}
	}
	out := make([]GroupChange, 0, len(byObject))
	for _, c := range byObject {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b GroupChange) int { return strings.Compare(a.Object, b.Object) })
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
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r)
	case "text":
		return r.renderText(w)
	case "markdown", "md":
		return r.renderMarkdown(w)
	}
	return fmt.Errorf("unknown output format %q; use one of %s", format, strings.Join(Formats, ", "))
}

// filtered reports whether a skip is a plain filter decision (counted, not
// listed, in human formats) rather than a problem someone should look at.
func filtered(s Skip) bool {
	switch s.Reason {
	case ReasonNotInTarget, ReasonSourceFiltered, ReasonNotIncluded, ReasonExcluded, ReasonDefaultExcluded, ReasonDisabled, ReasonGuest, ReasonNotUserOrGroup:
		return true
	}
	return false
}

// skipCounts counts skips by kind and reason, in a stable order.
func (r *Report) skipCounts() []string {
	counts := map[string]int{}
	for _, s := range r.Skipped {
		counts[s.Kind+" "+s.Reason]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return out
}

func (r *Report) headline() string {
	s := r.Summary
	if !r.Pending() {
		return fmt.Sprintf("No changes. OpenFGA matches the source (%d tuples in scope).", s.ExistingTuples)
	}
	return fmt.Sprintf("Plan: %d to add, %d to delete, in %d groups.", s.ToAdd, s.ToDelete, len(r.Changes))
}

func (r *Report) scopeLine() string {
	return fmt.Sprintf("Scope: %s#%s from %s. Source: %d groups (%d managed), %d users. Desired %d tuples, existing %d.",
		r.Scope.ObjectType, r.Scope.Relation, strings.Join(r.Scope.UserTypes, ", "),
		r.Summary.SourceGroups, r.Summary.ManagedGroups, r.Summary.SourceUsers, r.Summary.DesiredTuples, r.Summary.ExistingTuples)
}

func (r *Report) ownershipLine() string {
	o := r.Ownership
	line := fmt.Sprintf("Ownership: %s, policy %s", o.Mode, o.Policy)
	if o.Instance != "" {
		line += ", instance " + o.Instance
	}
	if len(o.Claims)+len(o.Releases) > 0 {
		line += fmt.Sprintf("; claims %d %s, releases %d", len(o.Claims), plural(len(o.Claims), "group", "groups"), len(o.Releases))
	}
	return line + "."
}

func (c GroupChange) title() string {
	if c.GroupName == "" {
		return c.Object + "  (not in the source)"
	}
	return fmt.Sprintf("%s  (%q, id %s)", c.Object, c.GroupName, c.GroupID)
}

func (r *Report) renderText(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "groupsync %s\n%s\n%s\n\n%s\n", r.Command, r.scopeLine(), r.ownershipLine(), r.headline())
	if sr := r.SourceRead; sr != nil {
		fmt.Fprintf(b, "Source read: %s, %d requests", sr.Mode, sr.Requests)
		if sr.Reason != "" {
			fmt.Fprintf(b, " (full because %s)", sr.Reason)
		}
		b.WriteString(".\n")
	}
	if g := r.Guard; g != nil {
		fmt.Fprintf(b, "\nSTOPPED by guard %s: %s\n", g.Guard, g.Message)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(b, "\n  %s\n", c.title())
		for _, u := range c.Add {
			fmt.Fprintf(b, "    + %s\n", u)
		}
		for _, u := range c.Delete {
			fmt.Fprintf(b, "    - %s\n", u)
		}
	}
	if len(r.Withheld) > 0 {
		fmt.Fprintf(b, "\nWithheld: %d changes not made\n", len(r.Withheld))
		for _, h := range r.Withheld {
			fmt.Fprintf(b, "  %s %s  (%s)\n", h.Op, h.Tuple, h.Reason)
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(b, "\nSkipped: %s\n", strings.Join(r.skipCounts(), ", "))
		for _, s := range r.Skipped {
			if !filtered(s) {
				fmt.Fprintf(b, "  %s %s: %s\n", s.Kind, s.label(), s.Detail)
			}
		}
	}
	if res := r.Result; res != nil {
		fmt.Fprintf(b, "\nApplied: %s\n", res.summary())
		for _, f := range res.Failed {
			fmt.Fprintf(b, "  failed %s %s: %s\n", f.Op, f.Tuple, f.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (s Skip) label() string {
	if s.Name == "" {
		return s.ID
	}
	return fmt.Sprintf("%q (id %s)", s.Name, s.ID)
}

func (r *Report) renderMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## groupsync %s\n\n**%s**\n\n%s\n%s\n", r.Command, r.headline(), r.scopeLine(), r.ownershipLine())
	if g := r.Guard; g != nil {
		fmt.Fprintf(b, "\n> **Stopped by guard `%s`:** %s\n", g.Guard, mdEscape(g.Message))
	}
	if len(r.Changes) > 0 {
		b.WriteString("\n| Group | Change | User |\n|---|---|---|\n")
		for _, c := range r.Changes {
			name := "`" + c.Object + "`"
			if c.GroupName != "" {
				name += " (" + mdEscape(c.GroupName) + ")"
			}
			for _, u := range c.Add {
				fmt.Fprintf(b, "| %s | add | `%s` |\n", name, u)
			}
			for _, u := range c.Delete {
				fmt.Fprintf(b, "| %s | delete | `%s` |\n", name, u)
			}
		}
	}
	if len(r.Withheld) > 0 {
		b.WriteString("\n### Withheld\n\n| Change | Tuple | Reason |\n|---|---|---|\n")
		for _, h := range r.Withheld {
			fmt.Fprintf(b, "| %s | `%s` | %s |\n", h.Op, h.Tuple, h.Reason)
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(b, "\n### Skipped\n\n%s\n", strings.Join(r.skipCounts(), ", "))
		first := true
		for _, s := range r.Skipped {
			if filtered(s) {
				continue
			}
			if first {
				b.WriteString("\n| Kind | Name | Id | Reason | Detail |\n|---|---|---|---|---|\n")
				first = false
			}
			fmt.Fprintf(b, "| %s | %s | `%s` | %s | %s |\n", s.Kind, mdEscape(s.Name), s.ID, s.Reason, mdEscape(s.Detail))
		}
	}
	if res := r.Result; res != nil {
		fmt.Fprintf(b, "\n### Applied\n\n%s\n", res.summary())
		for _, f := range res.Failed {
			fmt.Fprintf(b, "- failed %s `%s`: %s\n", f.Op, f.Tuple, mdEscape(f.Error))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var mdReplacer = strings.NewReplacer("|", `\|`, "\n", " ", "`", "'")

func mdEscape(s string) string { return mdReplacer.Replace(s) }

func (r *ApplyResult) summary() string {
	return fmt.Sprintf("%d added, %d deleted, %d failed, in %d write %s.",
		r.Added, r.Deleted, len(r.Failed), r.Requests, plural(r.Requests, "request", "requests"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

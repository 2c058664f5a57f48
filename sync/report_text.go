package sync

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The lines of the text report; the Markdown report shares the summary
// lines (headline, scope, ownership, skip counts, apply result).

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
	grants := 0
	for _, c := range r.Changes {
		if c.Relation != "" {
			grants++
		}
	}
	if grants > 0 {
		return fmt.Sprintf("Plan: %d to add, %d to delete, in %d groups and %d grants.", s.ToAdd, s.ToDelete, len(r.Changes)-grants, grants)
	}
	return fmt.Sprintf("Plan: %d to add, %d to delete, in %d groups.", s.ToAdd, s.ToDelete, len(r.Changes))
}

func (r *Report) scopeLine() string {
	return fmt.Sprintf("Scope: %s#%s from %s. Source: %d groups (%d managed), %d users. Desired %d tuples, existing %d.",
		r.Scope.ObjectType, r.Scope.Relation, strings.Join(r.Scope.UserTypes, ", "),
		r.Summary.SourceGroups, r.Summary.ManagedGroups, r.Summary.SourceUsers, r.Summary.DesiredTuples, r.Summary.ExistingTuples)
}

// sliceLine says what a targeted run covered, or "".
func (r *Report) sliceLine() string {
	sl := r.Slice
	if sl == nil {
		return ""
	}
	var parts []string
	if len(sl.UserIDs) > 0 {
		parts = append(parts, "users "+strings.Join(sl.UserIDs, ", "))
	}
	if len(sl.Objects) > 0 {
		parts = append(parts, "groups "+strings.Join(sl.Objects, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing (no name resolved to a user or group)")
	}
	line := "Targeted: " + strings.Join(parts, "; ") + "."
	for _, n := range sl.Notes {
		line += " Note: " + n + "."
	}
	return line
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
	if c.Relation != "" {
		t := c.Object + " " + c.Relation + "  (grant"
		if len(c.Rules) > 0 {
			t += ": rule " + strings.Join(c.Rules, ", ")
		}
		return t + ")"
	}
	if c.GroupName == "" {
		return c.Object + "  (not in the source)"
	}
	return fmt.Sprintf("%s  (%q, id %s)", c.Object, c.GroupName, c.GroupID)
}

func (r *Report) renderText(w io.Writer) error {
	// Written as it is rendered: a first sync's report lists every tuple,
	// and a copy of it all in memory would be the run's largest object.
	b := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(b, "groupsync %s\n%s\n", r.Command, r.scopeLine())
	if l := r.sliceLine(); l != "" {
		fmt.Fprintln(b, l)
	}
	fmt.Fprintf(b, "%s\n\n%s\n", r.ownershipLine(), r.headline())
	if sr := r.SourceRead; sr != nil {
		fmt.Fprintf(b, "Source read: %s, %d requests", sr.Mode, sr.Requests)
		if sr.Reason != "" {
			fmt.Fprintf(b, " (full because %s)", sr.Reason)
		}
		b.WriteString(".\n")
	}
	if tr := r.TargetRead; tr != nil {
		fmt.Fprintf(b, "OpenFGA read: %s, %d groups read, %d known unchanged", tr.Mode, tr.GroupsRead, tr.GroupsKnown)
		if tr.GroupsFromState > 0 {
			fmt.Fprintf(b, ", %d changed ones known from the state", tr.GroupsFromState)
		}
		if tr.Reason != "" {
			fmt.Fprintf(b, " (full because %s)", tr.Reason)
		}
		b.WriteString(".\n")
	}
	for _, line := range r.grantLines() {
		b.WriteString(line + "\n")
	}
	if g := r.Guard; g != nil {
		fmt.Fprintf(b, "\nSTOPPED by guard %s: %s\n", g.Guard, g.Message)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(b, "\n  %s\n", c.title())
		for _, u := range c.Add {
			fmt.Fprintf(b, "    + %s%s\n", u, r.userLabel(u))
		}
		for _, u := range c.Delete {
			fmt.Fprintf(b, "    - %s%s\n", u, r.userLabel(u))
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
		for _, w := range res.Warnings {
			fmt.Fprintf(b, "  warning: %s\n", w)
		}
	}
	return b.Flush()
}

func (s Skip) label() string {
	if s.Name == "" {
		return s.ID
	}
	return fmt.Sprintf("%q (id %s)", s.Name, s.ID)
}

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

// grantLines say which grant scopes the run plans, and which groups it
// manages only because an application's grants name them.
func (r *Report) grantLines() []string {
	var out []string
	for _, g := range r.Grants {
		out = append(out, fmt.Sprintf("Grants: %s#%s from %s, rule %s: %d desired.", g.ObjectType, g.Relation, g.UserType, strings.Join(g.Rules, ", "), g.Desired))
	}
	for _, m := range r.ManagedByGrants {
		out = append(out, fmt.Sprintf("Managed because the store grants to it: %s (%s).", m.Object, strings.Join(m.Grants, "; ")))
	}
	return out
}

package sync

import "strings"

// Plan is the difference between what should exist and what does, inside
// the scope. Policies and guards may only move changes from Adds/Deletes to
// Withheld; nothing ever adds a delete.
type Plan struct {
	Scope    Scope
	Desired  *Desired
	Existing int     // tuples read from the sink inside the scope
	Adds     []Tuple // sorted
	Deletes  []Tuple // sorted
	Withheld []Withheld

	// Ownership: the objects this run starts and stops managing (owned
	// mode). Claims are written before any add, releases after the
	// object's deletes succeeded, so a run that dies halfway leaves a
	// registry the next run can continue from.
	Claims   []string
	Releases []string
	// Guard is set when a guard stops the run; nothing is written then.
	Guard *GuardTrip
}

// Withheld is a change the engine decided not to make, and why.
type Withheld struct {
	Op     string `json:"op"` // "add" or "delete"
	Tuple  Tuple  `json:"tuple"`
	Reason string `json:"reason"`
}

// Diff compares desired tuples with the sink's existing ones. Existing
// tuples outside scope are ignored even if a sink returned them, so that no
// bug elsewhere can make groupsync delete what is not its own.
func Diff(d *Desired, existing []Tuple, scope Scope) *Plan {
	p := &Plan{Scope: scope, Desired: d}
	want := make(map[Tuple]struct{}, len(d.Tuples))
	for _, t := range d.Tuples {
		want[t] = struct{}{}
	}
	have := make(map[Tuple]struct{}, len(existing))
	for _, t := range existing {
		if !scope.Contains(t) {
			continue
		}
		if _, dup := have[t]; dup {
			continue
		}
		have[t] = struct{}{}
		p.Existing++
		if _, ok := want[t]; ok {
			continue
		}
		if reason := heldReason(d, t); reason != "" {
			p.Withheld = append(p.Withheld, Withheld{Op: "delete", Tuple: t, Reason: reason})
			continue
		}
		p.Deletes = append(p.Deletes, t)
	}
	for _, t := range d.Tuples {
		if _, ok := have[t]; !ok {
			p.Adds = append(p.Adds, t)
		}
	}
	SortTuples(p.Deletes)
	sortBy(p.Withheld, func(w Withheld) Tuple { return w.Tuple })
	return p
}

// heldReason says why t must not be deleted because the source is ambiguous
// about it, or "".
func heldReason(d *Desired, t Tuple) string {
	if d.HeldObjects[t.Object] {
		return ReasonDuplicateObject
	}
	if d.HeldUsers[t.User] {
		return ReasonDuplicateUser
	}
	if obj, _, ok := strings.Cut(t.User, "#"); ok && d.HeldObjects[obj] {
		return ReasonDuplicateObject
	}
	return ""
}

package sync

import (
	"slices"
	"strings"
)

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
	// GrantedBy (target-driven mode) names, for each group managed only
	// because an application grants something to it, a few such grants.
	GrantedBy map[string][]Tuple
	// Guard is set when a guard stops the run; nothing is written then.
	Guard *GuardTrip

	// target is how the run read the target incrementally, if it did.
	target *targetRun
}

// GuardTrip is a guard that stopped (or, for plan, would stop) a run
// before it wrote anything.
type GuardTrip struct {
	Guard   string  `json:"guard"`
	Limit   float64 `json:"limit"`
	Actual  float64 `json:"actual"`
	Message string  `json:"message"`
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
//
// Both sides are walked once in sorted order (desired tuples are sorted by
// the mapping; existing ones are sorted here if a sink did not), so a diff
// of a million tuples needs no set of tuples. Diff filters and sorts
// existing in place: the caller hands it over.
func Diff(d *Desired, existing []Tuple, scope Scope) *Plan {
	return diffList(&d.Members, d, sortedHave(existing, scope), scope, nil)
}

// diffGrants is Diff for one grant set's tuples; held says which objects
// and users the source is ambiguous about.
func diffGrants(want []Tuple, held *Desired, existing []Tuple, scope Scope) *Plan {
	return diffList(tupleSlice(want), &Desired{HeldObjects: held.HeldObjects, HeldUsers: held.HeldUsers}, sortedHave(existing, scope), scope, nil)
}

// sortedHave keeps the tuples inside scope and sorts them, in place.
func sortedHave(existing []Tuple, scope Scope) tupleSlice {
	have := slices.DeleteFunc(existing, func(t Tuple) bool { return !scope.Contains(t) })
	if !slices.IsSortedFunc(have, Tuple.Compare) {
		SortTuples(have)
	}
	return have
}

// diffKnown is Diff of tuples read (held compactly) where the objects in
// known were not read: their tuples are known to be the desired ones
// (incremental runs), so they count as existing and change nothing.
func diffKnown(d *Desired, existing *Memberships, scope Scope, known map[string]bool) *Plan {
	return diffList(&d.Members, d, existing, scope, known)
}

// diffList is the diff of the sorted tuples want against the sorted
// tuples have; d says which tuples are held (heldReason) and becomes the
// plan's Desired. Tuples of have outside scope, or of known objects, are
// passed over.
func diffList(want tupleList, d *Desired, have tupleList, scope Scope, known map[string]bool) *Plan {
	p := &Plan{Scope: scope, Desired: d}
	n, m := want.Len(), have.Len()
	i, j := 0, 0
	var prev Tuple
	for i < n || j < m {
		var w, h Tuple
		if i < n {
			if w = want.At(i); known[w.Object] {
				p.Existing++
				i++
				continue
			}
		}
		if j < m {
			h = have.At(j)
			if !scope.Contains(h) || known[h.Object] || j > 0 && h == prev {
				j++ // outside, known, or a tuple a sink repeated: counted once
				continue
			}
		}
		c := 0
		switch {
		case i == n:
			c = 1
		case j == m:
			c = -1
		default:
			c = w.Compare(h)
		}
		switch {
		case c < 0:
			p.Adds = append(p.Adds, w)
			i++
		case c > 0:
			p.Existing++
			prev = h
			j++
			if reason := heldReason(d, h); reason != "" {
				p.Withheld = append(p.Withheld, Withheld{Op: "delete", Tuple: h, Reason: reason})
			} else {
				p.Deletes = append(p.Deletes, h)
			}
		default:
			p.Existing++
			prev = h
			i++
			j++
		}
	}
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
	if d.GrouplessUsers[t.User] {
		return ReasonNoGroups
	}
	if obj, _, ok := strings.Cut(t.User, "#"); ok && d.HeldObjects[obj] {
		return ReasonDuplicateObject
	}
	return ""
}

// DesiredTuples is every tuple the plan wants to exist in its scopes:
// memberships and grants, sorted.
func (p *Plan) DesiredTuples() []Tuple {
	out := p.Desired.Members.Tuples()
	for _, set := range p.Desired.Grants {
		out = append(out, set.Tuples...)
	}
	SortTuples(out)
	return slices.Compact(out)
}

// ExistingTuples is every tuple the plan found in its scopes, rebuilt from
// the diff: the desired ones it did not have to add, and the ones it
// deletes or withholds from deleting. Sorted.
func (p *Plan) ExistingTuples() []Tuple {
	// Policies and guards only ever withhold deletes, never adds.
	adds := make(map[Tuple]bool, len(p.Adds))
	for _, t := range p.Adds {
		adds[t] = true
	}
	var out []Tuple
	for _, t := range p.DesiredTuples() {
		if !adds[t] {
			out = append(out, t)
		}
	}
	out = append(out, p.Deletes...)
	for _, w := range p.Withheld {
		if w.Op == "delete" {
			out = append(out, w.Tuple)
		}
	}
	SortTuples(out)
	return slices.Compact(out)
}

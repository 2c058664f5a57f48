package graphtest

// Computing a delta round from the change log (see delta.go).

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// memberDelta is one entry of members@delta.
type memberDelta struct {
	id      string
	kind    kind
	removed bool
}

// deltaEntry is one object of a round.
type deltaEntry struct {
	id      string
	obj     int32  // the object in the round's index; -1 when removed
	removed string // "@removed" reason, or ""
	// members are the members@delta entries, sorted by id; for a full
	// round they are read from the index when the page is written.
	members []memberDelta
	all     bool // every current member, as additions (a full round, or a created group)
}

// round is the sorted list of entries of one round over one index.
type round struct {
	kind            string
	from, to        int
	abs             bool
	ix              *index
	ids             string // the $filter ids, joined
	entries         []deltaEntry
	sortedMemberBuf map[int32][]memberDelta
	mu              sync.Mutex
}

// roundFor returns the entries of a round, computing them once per index.
func (s *Server) roundFor(kind string, from, to int, abs bool, ix *index, changes []changeSet, ids []string) *round {
	key := strings.Join(ids, ",")
	s.delta.cacheMu.Lock()
	defer s.delta.cacheMu.Unlock()
	if c := s.delta.cache[kind]; c != nil && c.from == from && c.to == to && c.abs == abs && c.ix == ix && c.ids == key {
		return c
	}
	rd := &round{kind: kind, from: from, to: to, abs: abs, ix: ix, ids: key}
	var only map[string]bool
	if len(ids) > 0 {
		only = map[string]bool{}
		for _, id := range ids {
			only[id] = true
		}
	}
	keep := func(id string) bool { return only == nil || only[id] }
	if kind == "groups" {
		rd.entries = groupEntries(ix, changes, from, to, abs, keep)
	} else {
		rd.entries = userEntries(ix, changes, from, to, abs, keep)
	}
	if s.delta.cache == nil {
		s.delta.cache = map[string]*round{}
	}
	s.delta.cache[kind] = rd
	return rd
}

// groupEntries lists a round's groups. A full round (from < 0) has every
// group with all its members. Otherwise the round has the net changes since
// from: or, when abs is set (a replaying round, whose client already has
// some of these changes), every group and membership touched since from,
// as it is now.
func groupEntries(ix *index, changes []changeSet, from, to int, abs bool, keep func(string) bool) []deltaEntry {
	var out []deltaEntry
	if from < 0 {
		for _, o := range ix.groups {
			if id := ix.id(o); keep(id) {
				out = append(out, deltaEntry{id: id, obj: o, all: true})
			}
		}
		slices.SortFunc(out, func(a, b deltaEntry) int { return cmp.Compare(a.id, b.id) })
		return out
	}
	first := map[string]groupBefore{}
	type pairKey struct{ g, m string }
	firstPair := map[pairKey]pairChange{}
	touched := map[string]bool{}
	for v := from; v < to && v < len(changes); v++ {
		for _, g := range changes[v].groups {
			if _, ok := first[g.id]; !ok {
				first[g.id] = g
			}
			touched[g.id] = true
		}
		for _, p := range changes[v].pairs {
			k := pairKey{p.group, p.member}
			if _, ok := firstPair[k]; !ok {
				firstPair[k] = p
			}
			touched[p.group] = true
		}
	}
	pairsOf := map[string][]pairChange{}
	for _, p := range firstPair {
		pairsOf[p.group] = append(pairsOf[p.group], p)
	}
	for id := range touched {
		if !keep(id) {
			continue
		}
		before, propsTouched := first[id]
		existed := !propsTouched || before.existed
		o, exists := ix.lookup(kindGroup, id)
		switch {
		case !exists && (existed || abs):
			reason := "deleted" // a security group cannot be restored
			if before.g.hasType("Unified") {
				reason = "changed" // a Microsoft 365 group goes to deleted items
			}
			out = append(out, deltaEntry{id: id, obj: -1, removed: reason})
		case !exists:
			// created and deleted since the token: nothing to tell
		case !existed && !abs:
			out = append(out, deltaEntry{id: id, obj: o, all: true})
		default:
			var set map[int32]bool
			var ms []memberDelta
			for _, p := range pairsOf[id] {
				if set == nil {
					set = make(map[int32]bool, len(ix.directMembers(o)))
					for _, m := range ix.directMembers(o) {
						set[m] = true
					}
				}
				mo, known := ix.byID[p.member]
				now := known && set[mo]
				if now == p.was && !abs {
					continue
				}
				k := p.kind
				if known {
					k = ix.kind(mo)
				}
				ms = append(ms, memberDelta{id: p.member, kind: k, removed: !now})
			}
			changed := propsTouched && (abs || !before.existed || !sameGroupProps(&before.g, ix.group(o)))
			if len(ms) == 0 && !changed {
				continue
			}
			slices.SortFunc(ms, func(a, b memberDelta) int { return cmp.Compare(a.id, b.id) })
			out = append(out, deltaEntry{id: id, obj: o, members: ms})
		}
	}
	slices.SortFunc(out, func(a, b deltaEntry) int { return cmp.Compare(a.id, b.id) })
	return out
}

func userEntries(ix *index, changes []changeSet, from, to int, abs bool, keep func(string) bool) []deltaEntry {
	var out []deltaEntry
	if from < 0 {
		for _, o := range ix.users {
			if id := ix.id(o); keep(id) {
				out = append(out, deltaEntry{id: id, obj: o})
			}
		}
	} else {
		first := map[string]userBefore{}
		for v := from; v < to && v < len(changes); v++ {
			for _, u := range changes[v].users {
				if _, ok := first[u.id]; !ok {
					first[u.id] = u
				}
			}
		}
		for id, before := range first {
			if !keep(id) {
				continue
			}
			o, exists := ix.lookup(kindUser, id)
			switch {
			case !exists && (before.existed || abs):
				out = append(out, deltaEntry{id: id, obj: -1, removed: "changed"}) // deleted users can be restored
			case !exists:
			case abs || !before.existed || *ix.user(o) != before.u:
				out = append(out, deltaEntry{id: id, obj: o})
			}
		}
	}
	slices.SortFunc(out, func(a, b deltaEntry) int { return cmp.Compare(a.id, b.id) })
	return out
}

// membersOf returns an entry's members@delta, sorted by id.
func (rd *round) membersOf(e *deltaEntry) []memberDelta {
	if !e.all {
		return e.members
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if ms, ok := rd.sortedMemberBuf[e.obj]; ok {
		return ms
	}
	direct := rd.ix.directMembers(e.obj)
	ms := make([]memberDelta, len(direct))
	for i, m := range direct {
		ms[i] = memberDelta{id: rd.ix.id(m), kind: rd.ix.kind(m)}
	}
	slices.SortFunc(ms, func(a, b memberDelta) int { return cmp.Compare(a.id, b.id) })
	if rd.sortedMemberBuf == nil {
		rd.sortedMemberBuf = map[int32][]memberDelta{}
	}
	rd.sortedMemberBuf[e.obj] = ms
	return ms
}

package sync

import (
	"iter"
	"maps"
	"slices"
	"sort"
	"sync"
)

// Memberships is the mapping's membership tuples, all of one relation,
// sorted by object and then user, and held compactly: each group's users
// are indexes into one table of user strings. A million memberships take
// 4 bytes each here, where a Tuple takes 48: at a large tenant the desired
// state was the biggest thing a run held.
//
// The zero value is empty. Build one with a memberBuilder (the mapping) or
// MembershipsOf.
type Memberships struct {
	relation string
	objects  []string // one per run, ascending
	ends     []int32  // ends[k] is where objects[k]'s users end in users
	users    []int32  // indexes into names; each run ascending by name, no repeats
	names    []string // user strings ("user:alice", "group:eng#member")
}

// MembershipsOf holds tuples of one relation as Memberships; they are
// sorted and repeats dropped. It panics on tuples of several relations,
// which only a programming error can produce.
func MembershipsOf(ts []Tuple) Memberships {
	byObject := map[string][]string{}
	for _, t := range ts {
		if t.Relation != ts[0].Relation {
			panic("sync.MembershipsOf: tuples of more than one relation")
		}
		byObject[t.Object] = append(byObject[t.Object], t.User)
	}
	if len(ts) == 0 {
		return Memberships{}
	}
	return membershipsOfGroups(ts[0].Relation, byObject)
}

// memberBuilder builds Memberships group by group, in object order:
// from user strings (add), or from positions in a table of user strings
// given up front (names, addIndexes), as the mapping does.
type memberBuilder struct {
	relation string
	names    []string // the table addIndexes refers to
	m        Memberships
	index    map[string]int32
}

// addIndexes appends object's users, given as positions in b.names that
// are sorted by name and unique; objects come in ascending order.
func (b *memberBuilder) addIndexes(object string, users []int32) {
	if len(users) == 0 {
		return
	}
	b.m.users = append(b.m.users, users...)
	b.m.objects = append(b.m.objects, object)
	b.m.ends = append(b.m.ends, int32(len(b.m.users)))
}

// add appends object's users, which are sorted and unique; objects come in
// ascending order.
func (b *memberBuilder) add(object string, users []string) {
	if len(users) == 0 {
		return
	}
	if b.index == nil {
		b.index = map[string]int32{}
	}
	for _, u := range users {
		i, ok := b.index[u]
		if !ok {
			i = int32(len(b.m.names))
			b.index[u] = i
			b.m.names = append(b.m.names, u)
		}
		b.m.users = append(b.m.users, i)
	}
	b.m.objects = append(b.m.objects, object)
	b.m.ends = append(b.m.ends, int32(len(b.m.users)))
}

func (b *memberBuilder) done() Memberships {
	m := b.m
	m.relation = b.relation
	if b.names != nil {
		m.names = b.names
	}
	m.names = slices.Clip(m.names)
	m.users = slices.Clip(m.users)
	*b = memberBuilder{}
	return m
}

// Len is the number of tuples.
func (m *Memberships) Len() int { return len(m.users) }

// At returns the i-th tuple in order.
func (m *Memberships) At(i int) Tuple {
	k := sort.Search(len(m.ends), func(k int) bool { return int(m.ends[k]) > i })
	return Tuple{User: m.names[m.users[i]], Relation: m.relation, Object: m.objects[k]}
}

// All yields the tuples in order.
func (m *Memberships) All() iter.Seq[Tuple] {
	return func(yield func(Tuple) bool) {
		start := 0
		for k, obj := range m.objects {
			for _, u := range m.users[start:m.ends[k]] {
				if !yield(Tuple{User: m.names[u], Relation: m.relation, Object: obj}) {
					return
				}
			}
			start = int(m.ends[k])
		}
	}
}

// Tuples returns the tuples as a new slice, in order.
func (m *Memberships) Tuples() []Tuple {
	if m.Len() == 0 {
		return nil
	}
	return slices.AppendSeq(make([]Tuple, 0, m.Len()), m.All())
}

// Filter keeps the tuples keep accepts, in place.
func (m *Memberships) Filter(keep func(Tuple) bool) {
	out := Memberships{relation: m.relation, names: m.names}
	start := 0
	for k, obj := range m.objects {
		before := len(out.users)
		for _, u := range m.users[start:m.ends[k]] {
			if keep(Tuple{User: m.names[u], Relation: m.relation, Object: obj}) {
				out.users = append(out.users, u)
			}
		}
		start = int(m.ends[k])
		if len(out.users) > before {
			out.objects = append(out.objects, obj)
			out.ends = append(out.ends, int32(len(out.users)))
		}
	}
	*m = out
}

// groups returns each object's run.
func (m *Memberships) groups() map[string]memberGroup {
	out := make(map[string]memberGroup, len(m.objects))
	start := 0
	for k, obj := range m.objects {
		out[obj] = memberGroup{relation: m.relation, object: obj, users: m.users[start:m.ends[k]:m.ends[k]], names: m.names}
		start = int(m.ends[k])
	}
	return out
}

// memberGroup is one group's desired tuples: a view into Memberships.
type memberGroup struct {
	relation, object string
	users            []int32
	names            []string
}

func (g memberGroup) Len() int          { return len(g.users) }
func (g memberGroup) User(i int) string { return g.names[g.users[i]] }

// within returns the group with only its tuples inside scope.
func (g memberGroup) within(s Scope) memberGroup {
	outside := func(u int32) bool {
		return !s.Contains(Tuple{User: g.names[u], Relation: g.relation, Object: g.object})
	}
	if slices.ContainsFunc(g.users, outside) {
		g.users = slices.DeleteFunc(slices.Clone(g.users), outside)
	}
	return g
}

// tupleList is a sorted list of tuples the diff walks: Memberships, or a
// plain slice (grants).
type tupleList interface {
	Len() int
	At(i int) Tuple
}

type tupleSlice []Tuple

func (s tupleSlice) Len() int       { return len(s) }
func (s tupleSlice) At(i int) Tuple { return s[i] }

// existingOf holds tuples read from the target compactly: the reads
// (each read group by group) with ts and the users of byObject (taken
// over) added. Tuples outside scope are dropped (the diff ignores them
// anyway); ts need not be sorted and may repeat.
func existingOf(scope Scope, ts []Tuple, byObject map[string][]string, reads ...Memberships) Memberships {
	reads = slices.DeleteFunc(reads, func(m Memberships) bool { return m.Len() == 0 })
	if len(ts) == 0 && len(byObject) == 0 && len(reads) <= 1 {
		if len(reads) == 0 {
			return Memberships{}
		}
		return reads[0]
	}
	if byObject == nil {
		byObject = map[string][]string{}
	}
	for _, m := range reads {
		for t := range m.All() {
			byObject[t.Object] = append(byObject[t.Object], t.User)
		}
	}
	for _, t := range ts {
		if scope.Contains(t) {
			byObject[t.Object] = append(byObject[t.Object], t.User)
		}
	}
	return membershipsOfGroups(scope.Relation, byObject)
}

// membershipsOfGroups holds each object's users (in any order, repeats
// allowed) as Memberships of relation.
func membershipsOfGroups(relation string, byObject map[string][]string) Memberships {
	b := memberBuilder{relation: relation}
	for _, obj := range slices.Sorted(maps.Keys(byObject)) {
		users := byObject[obj]
		slices.Sort(users)
		b.add(obj, slices.Compact(users))
	}
	return b.done()
}

// groupCollector gathers the groups a GroupReader hands over.
type groupCollector struct {
	scope    Scope
	mu       sync.Mutex
	byObject map[string][]string
}

func (c *groupCollector) add(object string, ts []Tuple) {
	users := make([]string, 0, len(ts))
	for _, t := range ts {
		if c.scope.Contains(t) && t.Object == object {
			users = append(users, t.User)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byObject == nil {
		c.byObject = map[string][]string{}
	}
	c.byObject[object] = append(c.byObject[object], users...)
}

func (c *groupCollector) done() Memberships {
	return membershipsOfGroups(c.scope.Relation, c.byObject)
}

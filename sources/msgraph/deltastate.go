package msgraph

import (
	"maps"
	"slices"
	"time"
)

// The incremental state: the tenant as groupsync last read it (groups with
// their kind flags and direct members, users with the properties the
// mapping uses) and the delta links to read changes from. Records are
// never modified in place once a state is built: a run clones the maps and
// replaces the records it changes, so the committed state stays intact
// until the new one is committed.

type groupFlags uint8

const (
	gSecurity groupFlags = 1 << iota
	gMail
	gUnified
	gDynamic
	gRoleAssignable
	// gKnown: the kind flags and name are known (listed, or sent by delta).
	// A group outside source.msgraph.groups.filter that was read only as a
	// subgroup has its name and members but not its kind.
	gKnown
	// gComplete: the members are known. Groups groupsync does not read
	// (distribution lists, groups outside the filter...) are kept without
	// members, and read when they start to matter.
	gComplete
)

type groupRec struct {
	name  string
	flags groupFlags
	// users are positions in the state's idTable, ascending: 4 bytes a
	// membership where an id string takes 16 (a million memberships at a
	// large tenant).
	users  []int32
	groups []string   // sorted
	others []otherRef // sorted by id
}

// otherRef is a member that is neither a user nor a group.
type otherRef struct{ id, kind string }

type userFlags uint8

const (
	uEnabledKnown userFlags = 1 << iota // accountEnabled was readable
	uEnabled
	uGuest
	uMailIsUPN // encoding only
)

type userRec struct {
	upn, mail string
	flags     userFlags
	attrs     map[string]string // the mapping's user attributes that are set
}

type deltaState struct {
	fingerprint  string
	groupsLink   string
	usersLink    string
	usersTracked bool
	fullAt       time.Time // the last full read
	linkAt       time.Time // when the delta links were issued
	groups       map[string]*groupRec
	users        map[string]*userRec // empty unless usersTracked
	ids          idTable             // what groupRec.users index
}

// clone copies the maps, not the records.
func (st *deltaState) clone() *deltaState {
	c := *st
	c.groups = maps.Clone(st.groups)
	c.users = maps.Clone(st.users)
	if c.users == nil {
		c.users = map[string]*userRec{}
	}
	c.ids = st.ids.clone()
	return &c
}

// idTable holds each member id once; member lists hold positions in it.
// Ids are only ever appended, so a position means the same id in every
// clone of a state.
type idTable struct {
	ids []string
	// ids[:sorted] are ascending (a decoded state's table) and found by
	// binary search; ids appended after them are found through added.
	sorted int
	added  map[string]int32
}

// clone shares the ids so far; the clone's appends never reach the
// original's.
func (t *idTable) clone() idTable {
	return idTable{ids: slices.Clip(t.ids), sorted: t.sorted, added: maps.Clone(t.added)}
}

func (t *idTable) at(i int32) string { return t.ids[i] }

// find returns id's position, if it has one.
func (t *idTable) find(id string) (int32, bool) {
	if i, ok := slices.BinarySearch(t.ids[:t.sorted], id); ok {
		return int32(i), true
	}
	i, ok := t.added[id]
	return i, ok
}

// intern returns id's position, appending it when it has none.
func (t *idTable) intern(id string) int32 {
	if i, ok := t.find(id); ok {
		return i
	}
	if t.added == nil {
		t.added = map[string]int32{}
	}
	i := int32(len(t.ids))
	t.ids = append(t.ids, id)
	t.added[id] = i
	return i
}

// internAll returns the positions of ids, ascending and without repeats.
func (t *idTable) internAll(ids []string) []int32 {
	if len(ids) == 0 {
		return nil
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = t.intern(id)
	}
	slices.Sort(out)
	return slices.Clip(slices.Compact(out))
}

// memberIDs returns the ids of g's users.
func (st *deltaState) memberIDs(g *groupRec) []string {
	out := make([]string, len(g.users))
	for i, u := range g.users {
		out[i] = st.ids.at(u)
	}
	return out
}

func (g *groupRec) clone() *groupRec { c := *g; return &c }

func (u *userRec) clone() *userRec {
	c := *u
	c.attrs = maps.Clone(u.attrs)
	return &c
}

func (g *groupRec) props() groupProps {
	return groupProps{name: g.name, security: g.flags&gSecurity != 0, mail: g.flags&gMail != 0, unified: g.flags&gUnified != 0,
		dynamic: g.flags&gDynamic != 0, roleAssignable: g.flags&gRoleAssignable != 0}
}

func flagsOf(p groupProps) groupFlags {
	f := gKnown
	for _, b := range []struct {
		on   bool
		flag groupFlags
	}{{p.security, gSecurity}, {p.mail, gMail}, {p.unified, gUnified}, {p.dynamic, gDynamic}, {p.roleAssignable, gRoleAssignable}} {
		if b.on {
			f |= b.flag
		}
	}
	return f
}

package msgraph

import (
	"maps"
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
	name   string
	flags  groupFlags
	users  []string   // sorted
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
}

// clone copies the maps, not the records.
func (st *deltaState) clone() *deltaState {
	c := *st
	c.groups = maps.Clone(st.groups)
	c.users = maps.Clone(st.users)
	if c.users == nil {
		c.users = map[string]*userRec{}
	}
	return &c
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

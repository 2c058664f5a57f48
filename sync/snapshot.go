package sync

import (
	"fmt"
	"iter"
)

// Snapshot is everything a source read from the identity provider at one
// moment. It knows nothing of OpenFGA: groups and users keep the IdP's stable
// ids, and the mapping decides what they become.
type Snapshot struct {
	Groups []Group
	Users  []User
	// Skipped is what the source itself left out (member types that are
	// neither users nor groups, groups that vanished mid-read ...), for the
	// report.
	Skipped []Skip
}

// Group is one IdP group with its direct members.
type Group struct {
	ID   string // stable id (Entra object id, LDAP objectGUID, ...)
	Name string // display name; not necessarily unique
	// Users are the ids of the direct user members. A source may give
	// them instead as UserIndexes, positions in Snapshot.Users: 4 bytes a
	// membership where an id takes 16, and a source can build them once
	// for all of a large tenant's groups. A group has one or the other;
	// code that reads snapshots goes through Snapshot.UserIDs,
	// Snapshot.EachUserID or Group.UserCount, never Users alone.
	Users       []string
	UserIndexes []int32
	Groups      []string // ids of direct subgroup members
	// NotSynced, when set, says why the source read this group only for its
	// members' sake (it is a subgroup of a synced group but outside the
	// source's own group filter): it gets no tuples of its own, but its
	// members still count for the groups that contain it.
	NotSynced string
}

// User is one IdP user.
type User struct {
	ID         string            // stable id
	UPN        string            // userPrincipalName, or the source's login name
	Mail       string            // primary e-mail
	Attributes map[string]string // anything else a mapping may key on
	Disabled   bool
	Guest      bool
}

// UserCount is how many direct user members g lists.
func (g *Group) UserCount() int { return len(g.Users) + len(g.UserIndexes) }

// EachUserID yields the ids of g's direct user members, in either form.
func (s *Snapshot) EachUserID(g *Group) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, id := range g.Users {
			if !yield(id) {
				return
			}
		}
		for _, i := range g.UserIndexes {
			if !yield(s.Users[i].ID) {
				return
			}
		}
	}
}

// UserIDs returns the ids of g's direct user members, in either form.
func (s *Snapshot) UserIDs(g *Group) []string {
	if g.UserIndexes == nil {
		return g.Users
	}
	out := make([]string, 0, len(g.UserIndexes))
	for id := range s.EachUserID(g) {
		out = append(out, id)
	}
	return out
}

// WithUserIDs returns a copy of s whose groups all list their users by
// id, for code that edits or compares snapshots; the users and skips are
// shared.
func (s *Snapshot) WithUserIDs() *Snapshot {
	c := *s
	c.Groups = make([]Group, len(s.Groups))
	for i := range s.Groups {
		g := s.Groups[i]
		if g.UserIndexes != nil {
			g.Users, g.UserIndexes = s.UserIDs(&g), nil
		}
		c.Groups[i] = g
	}
	return &c
}

// checkUserIndexes refuses a group that lists users in both forms or
// points past Snapshot.Users: a source bug, which planning from could
// turn into deletes.
func (s *Snapshot) checkUserIndexes() error {
	for i := range s.Groups {
		g := &s.Groups[i]
		if len(g.UserIndexes) == 0 {
			continue
		}
		if len(g.Users) > 0 {
			return fmt.Errorf("snapshot: group %q lists its users both by id and by index", g.ID)
		}
		for _, u := range g.UserIndexes {
			if u < 0 || int(u) >= len(s.Users) {
				return fmt.Errorf("snapshot: group %q lists user index %d of %d users", g.ID, u, len(s.Users))
			}
		}
	}
	return nil
}

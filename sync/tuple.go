// Package sync is groupsync's engine: it maps a source's snapshot to the
// tuples that should exist, diffs them against what the sink holds in the
// managed scope, guards the plan and applies it.
package sync

import (
	"cmp"
	"slices"
	"strings"
)

// Tuple is one OpenFGA relationship tuple in OpenFGA's own string forms:
// User "user:alice" or "group:eng#member", Relation "member", Object "group:eng".
type Tuple struct {
	User     string `json:"user"`
	Relation string `json:"relation"`
	Object   string `json:"object"`
}

func (t Tuple) String() string { return t.User + " " + t.Relation + " " + t.Object }

// Compare orders tuples by object, then relation, then user, so that a plan
// lists each group's changes together.
func (t Tuple) Compare(u Tuple) int {
	if c := cmp.Compare(t.Object, u.Object); c != 0 {
		return c
	}
	if c := cmp.Compare(t.Relation, u.Relation); c != 0 {
		return c
	}
	return cmp.Compare(t.User, u.User)
}

// SortTuples sorts tuples in place in the plan's order (see Tuple.Compare).
func SortTuples(ts []Tuple) { slices.SortFunc(ts, Tuple.Compare) }

// sortBy sorts any slice in place by the tuple each element carries, stably.
func sortBy[E any](s []E, tuple func(E) Tuple) {
	slices.SortStableFunc(s, func(a, b E) int { return tuple(a).Compare(tuple(b)) })
}

// Scope bounds what the engine reads as its own and may ever delete: tuples
// whose object is of ObjectType, whose relation is Relation and whose user is
// one of UserTypes ("user", or a userset type such as "group#member").
// Everything else in the store is invisible to groupsync.
type Scope struct {
	ObjectType string
	Relation   string
	UserTypes  []string
	// Objects, when non-nil, narrows the read to these objects ("group:eng"),
	// which a sink can read in parallel. When nil the sink reads every tuple of
	// ObjectType and keeps those in scope.
	Objects []string
	// Users, when non-nil (and Objects nil), narrows the read to tuples
	// whose user is one of these ("group:team-red#member"): the grants that
	// name managed groups, which OpenFGA reads by user and object type.
	Users []string
}

// Contains reports whether t lies inside the scope (ignoring Objects).
func (s Scope) Contains(t Tuple) bool {
	if t.Relation != s.Relation {
		return false
	}
	typ, _, ok := strings.Cut(t.Object, ":")
	if !ok || typ != s.ObjectType {
		return false
	}
	return slices.Contains(s.UserTypes, UserType(t.User))
}

// UserType returns the type part of a tuple's user: "user" for "user:alice",
// "group#member" for the userset "group:eng#member", "user:*" stays "user".
func UserType(user string) string {
	typ, rest, ok := strings.Cut(user, ":")
	if !ok {
		return ""
	}
	if _, rel, ok := strings.Cut(rest, "#"); ok {
		return typ + "#" + rel
	}
	return typ
}

package sync

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Explanation says why a user or a group has the tuples it has, or will:
// `groupsync explain user|group`. Data only; the CLI renders it.
type Explanation struct {
	Kind string `json:"kind"` // "user" or "group"
	Name string `json:"name"` // as asked
	// Found says the source knows the user or group; SourceID is its id
	// there, and OpenFGA its OpenFGA id (user:… or group:…), when mapped.
	Found    bool     `json:"found"`
	SourceID string   `json:"source_id,omitempty"`
	OpenFGA  []string `json:"openfga,omitempty"`
	// Paths (users) are the groups the user reaches, each with how.
	Paths []MembershipPath `json:"paths,omitempty"`
	// Members (groups) are the group's direct users and subgroups.
	Members *GroupMembers `json:"members,omitempty"`
	// Skipped are the mapping's refusals that touch this user or group.
	Skipped []Skip `json:"skipped,omitempty"`
	// Desired, Existing, ToAdd and ToDelete are the slice's tuples.
	Desired  []Tuple    `json:"desired"`
	Existing []Tuple    `json:"existing"`
	ToAdd    []Tuple    `json:"to_add"`
	ToDelete []Tuple    `json:"to_delete"`
	Withheld []Withheld `json:"withheld,omitempty"`
}

// MembershipPath is one group a user reaches.
type MembershipPath struct {
	Group   string   `json:"group"`                // display name
	GroupID string   `json:"group_id"`             // source id
	Via     []string `json:"via,omitempty"`        // nested: the groups from the user's direct group up to this one
	Object  string   `json:"object,omitempty"`     // the OpenFGA object, when the mapping manages the group
	Reason  string   `json:"not_synced,omitempty"` // why not, when it does not
}

// GroupMembers are a group's direct members in the source.
type GroupMembers struct {
	Users     int      `json:"users"`
	Subgroups []string `json:"subgroups,omitempty"`
}

// Explain reads the slice of one user or group from the source and
// OpenFGA, once, and says how its tuples come about. It writes nothing.
func (e *Engine) Explain(ctx context.Context, kind, name string) (*Explanation, error) {
	var slice Slice
	switch kind {
	case "user":
		slice.Users = []string{name}
	case "group":
		slice.Groups = []string{name}
	default:
		return nil, fmt.Errorf("explain %q: explain a user or a group", kind)
	}
	// One read of the source: the plan's own slice snapshot.
	p, rs, snap, err := e.planSlice(ctx, slice)
	if err != nil {
		return nil, err
	}
	x := &Explanation{Kind: kind, Name: name, Desired: nonNil(p.DesiredTuples()), Existing: nonNil(p.ExistingTuples()),
		ToAdd: nonNil(p.Adds), ToDelete: nonNil(p.Deletes), Withheld: p.Withheld}
	objects := map[string]string{}
	for _, g := range p.Desired.Groups {
		objects[g.ID] = g.Object
	}
	skipOf := map[string]Skip{}
	for _, s := range p.Desired.Skipped {
		if s.Kind == "group" {
			skipOf[s.ID] = s
		}
	}
	groupByID := map[string]*Group{}
	for i := range snap.Groups {
		groupByID[snap.Groups[i].ID] = &snap.Groups[i]
	}
	if kind == "user" {
		x.OpenFGA = rs.UserIDs
		uid := strings.TrimPrefix(name, e.Mapper.cfg.User.Type+":")
		for _, u := range snap.Users {
			// The user the run resolved the name to: by source id, or by
			// the OpenFGA id the mapping gives them.
			if id := e.Mapper.openfgaUser(u); u.ID == uid || id != "" && slices.Contains(rs.UserIDs, id) {
				x.Found, x.SourceID = true, u.ID
				break
			}
		}
		x.Paths = userPaths(snap, x.SourceID, groupByID, objects, skipOf)
	} else {
		x.OpenFGA = rs.Objects
		for _, g := range snap.Groups {
			if g.ID == name || g.Name == name {
				x.Found, x.SourceID = true, g.ID
				m := &GroupMembers{Users: g.UserCount()}
				for _, id := range g.Groups {
					if sub := groupByID[id]; sub != nil {
						m.Subgroups = append(m.Subgroups, sub.Name)
					}
				}
				slices.Sort(m.Subgroups)
				x.Members = m
				break
			}
		}
	}
	for _, s := range p.Desired.Skipped {
		if s.ID == x.SourceID || (s.Kind == "group" && slices.ContainsFunc(x.Paths, func(mp MembershipPath) bool { return mp.GroupID == s.ID })) {
			x.Skipped = append(x.Skipped, s)
		}
	}
	return x, nil
}

// userPaths walks up from the user's direct groups to every group that
// contains them through nesting, shortest path first.
func userPaths(snap *Snapshot, uid string, byID map[string]*Group, objects map[string]string, skips map[string]Skip) []MembershipPath {
	parents := map[string][]string{}
	for _, g := range snap.Groups {
		for _, sub := range g.Groups {
			parents[sub] = append(parents[sub], g.ID)
		}
	}
	type step struct {
		id  string
		via []string
	}
	var queue []step
	for i := range snap.Groups {
		g := &snap.Groups[i]
		for id := range snap.EachUserID(g) {
			if id == uid {
				queue = append(queue, step{id: g.ID})
				break
			}
		}
	}
	seen := map[string]bool{}
	var out []MembershipPath
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		if seen[st.id] {
			continue
		}
		seen[st.id] = true
		g := byID[st.id]
		if g == nil {
			continue
		}
		mp := MembershipPath{Group: g.Name, GroupID: g.ID, Via: st.via, Object: objects[g.ID]}
		if mp.Object == "" {
			mp.Reason = "not synced"
			if s, ok := skips[g.ID]; ok {
				mp.Reason = s.Reason + ": " + s.Detail
			}
		}
		out = append(out, mp)
		for _, parent := range parents[st.id] {
			queue = append(queue, step{id: parent, via: append(slices.Clone(st.via), g.Name)})
		}
	}
	return out
}

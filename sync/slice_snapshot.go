package sync

import "strings"

// SliceSnapshot cuts the slice s out of a full snapshot, as SliceSource
// describes it. Sources that hold the whole tenant anyway (the file
// source, tests) implement SnapshotSlice with it.
//
// A user matches a name by id, login name (UPN), mail or any attribute
// value, since the source does not know which of them the mapping keys
// users by; the engine then keeps only the users whose key or id is the
// name. A group matches by id or display name.
func SliceSnapshot(full *Snapshot, s Slice) *Snapshot {
	if full.checkUserIndexes() != nil {
		return full // malformed: the mapping refuses it, naming the group
	}
	full = full.WithUserIDs() // the slice edits groups' user lists
	groups := make(map[string]*Group, len(full.Groups))
	parents := map[string][]string{}
	for i := range full.Groups {
		g := &full.Groups[i]
		groups[g.ID] = g
		for _, sub := range g.Groups {
			parents[sub] = append(parents[sub], g.ID)
		}
	}
	named := map[string]bool{}
	for _, u := range full.Users {
		for _, n := range s.Users {
			if userMatches(u, n) {
				named[u.ID] = true
			}
		}
	}
	// whole: the named groups and everything below them, read in full.
	whole := map[string]bool{}
	var queue []string
	for _, g := range full.Groups {
		for _, n := range s.Groups {
			if g.ID == n || g.Name == n {
				queue = append(queue, g.ID)
			}
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if whole[id] || groups[id] == nil {
			continue
		}
		whole[id] = true
		queue = append(queue, groups[id].Groups...)
	}
	// around: the groups that hold a named user, directly or through
	// nesting; they list only the named users.
	around := map[string]bool{}
	for _, g := range full.Groups {
		for _, u := range g.Users {
			if named[u] {
				queue = append(queue, g.ID)
				break
			}
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if around[id] || groups[id] == nil {
			continue
		}
		around[id] = true
		queue = append(queue, parents[id]...)
	}

	out := &Snapshot{}
	listed := map[string]bool{}
	for _, g := range full.Groups {
		switch {
		case whole[g.ID]:
			out.Groups = append(out.Groups, g)
			for _, u := range g.Users {
				listed[u] = true
			}
		case around[g.ID]:
			c := g
			c.Users, c.Groups = nil, nil
			for _, u := range g.Users {
				if named[u] {
					c.Users = append(c.Users, u)
				}
			}
			for _, sub := range g.Groups {
				if around[sub] {
					c.Groups = append(c.Groups, sub)
				}
			}
			out.Groups = append(out.Groups, c)
		}
	}
	for _, u := range full.Users {
		if named[u.ID] || listed[u.ID] {
			out.Users = append(out.Users, u)
		}
	}
	for _, sk := range full.Skipped {
		if whole[sk.ID] || around[sk.ID] || named[sk.ID] {
			out.Skipped = append(out.Skipped, sk)
		}
	}
	return out
}

func userMatches(u User, name string) bool {
	if name == "" {
		return false
	}
	if u.ID == name || strings.EqualFold(u.UPN, name) || strings.EqualFold(u.Mail, name) {
		return true
	}
	for _, v := range u.Attributes {
		if v == name {
			return true
		}
	}
	return false
}

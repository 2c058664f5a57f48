package msgraph

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	gsync "github.com/groupsync/groupsync/sync"
)

// readFull starts delta tracking, then reads everything as without delta,
// and keeps what it read as the state.
func (s *Source) readFull(ctx context.Context) (*gsync.Snapshot, *deltaState, error) {
	now := s.now()
	st := &deltaState{fingerprint: s.fingerprint(), groups: map[string]*groupRec{}, users: map[string]*userRec{}, fullAt: now, linkAt: now}
	link, err := s.latestLink(ctx, "groups", deltaGroupSelect)
	if err != nil {
		return nil, nil, fmt.Errorf("msgraph: start tracking group changes (GET /groups/delta): %w", describe(err, "GroupMember.Read.All"))
	}
	st.groupsLink = link
	if s.trackUsers() {
		link, err := s.latestLink(ctx, "users", s.userSelect())
		switch {
		case err == nil:
			st.usersLink, st.usersTracked = link, true
		case statusOf(err) == http.StatusForbidden:
			// As the full read: without User.Read.All users are ids only.
			s.log.Warn("cannot track user changes (GET /users/delta answered 403; grant User.Read.All): incremental reads keep users as ids only, so mapping.user.skip_disabled, skip_guests and keys other than id cannot apply to them")
		default:
			return nil, nil, fmt.Errorf("msgraph: start tracking user changes (GET /users/delta): %w", describe(err, "User.Read.All"))
		}
	}

	list, err := s.listGroups(ctx)
	if err != nil {
		return nil, nil, err
	}
	r := newMemberReader(s)
	r.keepState, r.otherIDs, r.recs = true, map[string][]otherRef{}, map[string]*userRec{}
	snap, err := r.read(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range list {
		g := r.groups[l.id]
		if g == nil {
			continue // vanished during the read; the next round removes it
		}
		rec := &groupRec{name: l.name, flags: flagsOf(l.props)}
		if r.requested[l.id] {
			rec.setMembers(&st.ids, g, r.otherIDs[l.id])
		}
		st.groups[l.id] = rec
	}
	for id, g := range r.groups {
		if _, listed := st.groups[id]; !listed {
			// A subgroup outside the group filter: its members were read,
			// its kind is not known.
			rec := &groupRec{name: g.Name}
			rec.setMembers(&st.ids, g, r.otherIDs[id])
			st.groups[id] = rec
		}
	}
	if st.usersTracked {
		st.users = r.recs
	}
	return snap, st, nil
}

// setMembers fills a record from a group as read, and marks it complete.
func (g *groupRec) setMembers(ids *idTable, read *gsync.Group, others []otherRef) {
	g.users = ids.internAll(read.Users)
	g.groups = sortedUnique(read.Groups)
	g.others = slices.Clone(others)
	slices.SortFunc(g.others, func(a, b otherRef) int { return cmp.Compare(a.id, b.id) })
	g.others = slices.CompactFunc(g.others, func(a, b otherRef) bool { return a.id == b.id })
	g.flags |= gComplete
}

// sortedUnique sorts s in place (the order of a group's members means
// nothing) and returns it, capped so that no append can reach it, when it
// holds no duplicates.
func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return slices.Compact(slices.Clone(s))
		}
	}
	return s[:len(s):len(s)]
}

// latestLink asks for a delta link that starts from now.
func (s *Source) latestLink(ctx context.Context, resource string, sel []string) (string, error) {
	url := s.baseURL + "/" + resource + "/delta?$select=" + strings.Join(sel, ",") + "&$deltatoken=latest"
	if resource == "groups" {
		_, link, err := s.groupRound(ctx, url)
		return link, err
	}
	_, link, err := s.userRound(ctx, url)
	return link, err
}

package msgraph

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"

	gsync "github.com/groupsync/groupsync/sync"
)

// maxResolveRounds bounds the rounds of reads by id (one per nesting level
// reached for the first time).
const maxResolveRounds = 64

// resolveAndView reads what the snapshot needs and the state lacks, keeps
// the state to commit, then builds the snapshot.
func (w *stateWriter) resolveAndView(ctx context.Context) (*gsync.Snapshot, error) {
	s := w.s
	var list []listed
	if s.cfg.Groups.Filter != "" {
		// Graph evaluates the filter: list the groups it lets through
		// (pages of 999: a few requests), with their kind.
		var err error
		if list, err = s.listGroups(ctx); err != nil {
			return nil, err
		}
		for _, l := range list {
			if rec := w.st.groups[l.id]; rec == nil || rec.name != l.name || rec.flags&^gComplete != flagsOf(l.props) {
				rec = w.group(l.id)
				rec.name, rec.flags = l.name, flagsOf(l.props)|rec.flags&gComplete
			}
			delete(w.goneGroups, l.id)
		}
	}
	for round := 0; ; round++ {
		if s.cfg.Groups.Filter == "" {
			list = list[:0]
			for id, rec := range w.st.groups {
				if rec.flags&gKnown != 0 {
					list = append(list, s.classify(id, rec.props()))
				}
			}
		}
		props, members, users := w.missing(list)
		if len(props)+len(members)+len(users) == 0 {
			break
		}
		if round == maxResolveRounds {
			return nil, fmt.Errorf("msgraph: groups nested deeper than %d levels could not be resolved", maxResolveRounds)
		}
		s.log.Debug("reading what the delta state lacks", zap.Int("group_properties", len(props)),
			zap.Int("group_members", len(members)), zap.Int("users", len(users)))
		if err := w.readGroupProps(ctx, props); err != nil {
			return nil, err
		}
		if err := w.readMembers(ctx, members); err != nil {
			return nil, err
		}
		if err := w.readUsers(ctx, users); err != nil {
			return nil, err
		}
	}
	w.pruneUsers()
	// Encoded before the snapshot is built: the encoder's buffers and the
	// snapshot's users are then never held at once. A plan never commits,
	// so it skips the encoding.
	if gsync.WillCommit(ctx) {
		if err := s.pend(w.st); err != nil {
			return nil, err
		}
	}
	return w.view(list), nil
}

// missing walks from the synced groups through their subgroups, as the
// full read does, and lists what must be read first: properties of groups
// the state does not know (or, without a filter, every group's kind),
// members of groups the state has without members, and users it has not
// read.
func (w *stateWriter) missing(list []listed) (props, members, users []string) {
	if w.s.cfg.Groups.Filter == "" {
		for id, rec := range w.st.groups {
			if rec.flags&gKnown == 0 && !w.goneGroups[id] {
				props = append(props, id)
			}
		}
		if len(props) > 0 {
			sort.Strings(props)
			return props, nil, nil // their kind decides what is read
		}
	}
	seen := map[string]bool{}
	var queue []string
	for _, l := range list {
		if l.notSynced == "" {
			seen[l.id] = true
			queue = append(queue, l.id)
		}
	}
	userSeen := make([]bool, len(w.st.ids.ids))
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		rec := w.st.groups[id]
		if rec == nil {
			props = append(props, id) // nested, never read: its name, then its members
			continue
		}
		if rec.flags&gComplete == 0 {
			members = append(members, id)
			continue
		}
		for _, g := range rec.groups {
			if !seen[g] && !w.goneGroups[g] {
				seen[g] = true
				queue = append(queue, g)
			}
		}
		if !w.st.usersTracked {
			continue
		}
		for _, ix := range rec.users {
			if userSeen[ix] {
				continue
			}
			userSeen[ix] = true
			if u := w.st.ids.at(ix); (w.st.users[u] == nil && !w.goneUsers[u]) || w.staleUsers[u] {
				users = append(users, u)
			}
		}
	}
	sort.Strings(props)
	sort.Strings(members)
	sort.Strings(users)
	return props, members, users
}

// readMembers reads the direct members of groups with the full read's
// member reader (without following subgroups: the walk does that).
func (w *stateWriter) readMembers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	r := newMemberReader(w.s)
	r.keepState, r.noFollow, r.otherIDs, r.recs = true, true, map[string][]otherRef{}, map[string]*userRec{}
	var jobs []job
	for _, id := range ids {
		rec := w.st.groups[id]
		r.groups[id] = &gsync.Group{ID: id, Name: rec.name}
		r.known[id] = listed{id: id, name: rec.name}
		jobs = append(jobs, r.start(id))
	}
	if err := r.readJobs(ctx, jobs); err != nil {
		return err
	}
	for _, id := range ids {
		g := r.groups[id]
		if g == nil { // 404: deleted meanwhile
			delete(w.st.groups, id)
			w.goneGroups[id] = true
			continue
		}
		w.group(id).setMembers(&w.st.ids, g, r.otherIDs[id])
		// Nested groups the state never saw: their names come with them.
		for _, sub := range g.Groups {
			if w.st.groups[sub] == nil && r.groups[sub] != nil && !w.goneGroups[sub] {
				w.group(sub).name = r.groups[sub].Name
			}
		}
	}
	if w.st.usersTracked {
		for id, rec := range r.recs {
			w.st.users[id] = rec
			w.ownU[id] = true
			delete(w.staleUsers, id)
		}
	}
	w.skips = append(w.skips, r.skips...)
	return nil
}

// pruneUsers drops users no group of the state has as a member: the state
// keeps only what a later snapshot may need (a user who joins a group
// again is read by id).
func (w *stateWriter) pruneUsers() {
	if !w.st.usersTracked || len(w.st.users) == 0 {
		return
	}
	used := make([]bool, len(w.st.ids.ids))
	for _, g := range w.st.groups {
		for _, u := range g.users {
			used[u] = true
		}
	}
	for id := range w.st.users {
		if i, ok := w.st.ids.find(id); !ok || !used[i] {
			delete(w.st.users, id)
		}
	}
}

// view builds the snapshot from the state, as memberReader builds it from
// what it reads: every listed group, the synced ones and every group nested
// in them with their members, the users among those members, and the
// members that are neither.
func (w *stateWriter) view(list []listed) *gsync.Snapshot {
	s := w.s
	known := make(map[string]listed, len(list))
	groupsOut := make(map[string]*gsync.Group, len(list))
	var queue []string
	read := map[string]bool{}
	for _, l := range list {
		if w.st.groups[l.id] == nil {
			continue // deleted after it was listed (its members read 404)
		}
		known[l.id] = l
		groupsOut[l.id] = &gsync.Group{ID: l.id, Name: l.name, NotSynced: l.notSynced}
		if l.notSynced == "" {
			read[l.id] = true
			queue = append(queue, l.id)
		}
	}
	// The users the snapshot lists: their places in the state's table
	// first, records once sorted by id, so that a hundred thousand users
	// are one slice, not as many pointers.
	reached := make([]bool, len(w.st.ids.ids))
	var userPos []int32
	snap := &gsync.Snapshot{Skipped: slices.Clone(w.skips)}
	noEnabled := 0
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		rec, g := w.st.groups[id], groupsOut[id]
		if rec == nil || rec.flags&gComplete == 0 {
			continue // gone (resolved as deleted)
		}
		// Places in the state's table for now; numbered as the
		// snapshot's users below.
		g.UserIndexes = rec.users
		for _, u := range rec.users {
			if !reached[u] && (!w.st.usersTracked || w.st.users[w.st.ids.at(u)] != nil) { // else deleted: no longer a member
				reached[u] = true
				userPos = append(userPos, u)
			}
		}
		for _, sub := range rec.groups {
			srec := w.st.groups[sub]
			if srec == nil {
				continue // deleted
			}
			g.Groups = append(g.Groups, sub)
			if groupsOut[sub] == nil {
				l, ok := known[sub]
				if !ok {
					why := "created after the group list was read; it is synced from the next run"
					if s.cfg.Groups.Filter != "" {
						why = "outside source.msgraph.groups.filter; read only for the members it gives the groups that contain it"
					}
					l = listed{id: sub, name: srec.name, notSynced: why}
				}
				groupsOut[sub] = &gsync.Group{ID: sub, Name: l.name, NotSynced: l.notSynced}
			}
			if !read[sub] {
				read[sub] = true
				queue = append(queue, sub)
			}
		}
		if len(rec.others) > 0 {
			kinds := map[string]int{}
			for _, o := range rec.others {
				kinds[o.kind]++
			}
			var parts []string
			for k, n := range kinds {
				parts = append(parts, fmt.Sprintf("%d %s", n, k))
			}
			slices.Sort(parts)
			snap.Skipped = append(snap.Skipped, gsync.Skip{Kind: "member", ID: id, Name: g.Name, Reason: gsync.ReasonNotUserOrGroup,
				Detail: "members that are neither users nor groups: " + strings.Join(parts, ", ")})
		}
	}
	slices.SortFunc(userPos, func(a, b int32) int { return strings.Compare(w.st.ids.at(a), w.st.ids.at(b)) })
	// The groups list their users as places in snap.Users (4 bytes each,
	// where an id takes 16): numbered from the table's places here.
	number := make([]int32, len(reached)) // the user's place in snap.Users, plus one
	for k, u := range userPos {
		number[u] = int32(k) + 1
	}
	for _, g := range groupsOut {
		var users []int32
		if len(g.UserIndexes) > 0 {
			users = make([]int32, 0, len(g.UserIndexes))
		}
		for _, u := range g.UserIndexes {
			if k := number[u]; k > 0 {
				users = append(users, k-1)
			}
		}
		if len(users) == 0 {
			users = nil
		}
		g.UserIndexes = users
		snap.Groups = append(snap.Groups, *g)
	}
	sort.Slice(snap.Groups, func(i, j int) bool { return snap.Groups[i].ID < snap.Groups[j].ID })
	snap.Users = make([]gsync.User, len(userPos))
	for i, u := range userPos {
		id := w.st.ids.at(u)
		var ur *userRec
		if w.st.usersTracked {
			ur = w.st.users[id]
			if ur.flags&uEnabledKnown == 0 {
				noEnabled++
			}
		}
		s.fillSnapshotUser(&snap.Users[i], id, ur, w.st.usersTracked)
	}
	if noEnabled > 0 {
		s.log.Warn("users came back without accountEnabled or userType: the app cannot read user properties (grant User.Read.All), so mapping.user.skip_disabled and skip_guests cannot apply to them",
			zap.Int("users", noEnabled))
	}
	return snap
}

// fillSnapshotUser fills the snapshot's user from the state's record (nil
// when users are not tracked: the mapping needs only their ids).
func (s *Source) fillSnapshotUser(u *gsync.User, id string, rec *userRec, tracked bool) {
	u.ID = id
	if !tracked {
		return
	}
	u.UPN, u.Mail = rec.upn, rec.mail
	u.Guest = rec.flags&uGuest != 0
	u.Disabled = rec.flags&uEnabledKnown != 0 && rec.flags&uEnabled == 0
	if len(s.userAttrs) > 0 {
		u.Attributes = map[string]string{}
		for _, a := range s.userAttrs {
			if v := rec.attrs[a]; v != "" {
				u.Attributes[a] = v
			}
		}
	}
}

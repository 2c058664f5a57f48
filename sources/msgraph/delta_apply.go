package msgraph

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/models"

	gsync "github.com/groupsync/groupsync/sync"
)

// stateWriter changes a cloned state, copying each record before its first
// change so that the committed state is never touched.
type stateWriter struct {
	s          *Source
	st         *deltaState
	ownG, ownU map[string]bool
	goneGroups map[string]bool // deleted, as delta or a read by id said
	goneUsers  map[string]bool
	staleUsers map[string]bool // to read again by id
	skips      []gsync.Skip
}

func (w *stateWriter) group(id string) *groupRec {
	g := w.st.groups[id]
	switch {
	case g == nil:
		g = &groupRec{}
	case !w.ownG[id]:
		g = g.clone()
	default:
		return g
	}
	w.st.groups[id] = g
	w.ownG[id] = true
	return g
}

// memberChange is one entry of members@delta.
type memberChange struct {
	id, kind string // kind: "user", "group" or another directory object type
	present  bool
}

func readMemberChanges(ad map[string]any) []memberChange {
	raw, _ := ad["members@delta"].([]any)
	out := make([]memberChange, 0, len(raw))
	for _, e := range raw {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		id := anyString(m["id"])
		if id == "" {
			continue
		}
		kind := strings.TrimPrefix(anyString(m["@odata.type"]), "#microsoft.graph.")
		if kind == "" {
			kind = "directoryObject"
		}
		_, removed := m["@removed"]
		out = append(out, memberChange{id: id, kind: kind, present: !removed})
	}
	return out
}

func anyString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case *string:
		return deref(s)
	}
	return ""
}

// readIncremental follows the delta links from old; the new state is
// pending when it returns a snapshot.
func (s *Source) readIncremental(ctx context.Context, old *deltaState) (*gsync.Snapshot, int, error) {
	now := s.now()
	w := &stateWriter{s: s, st: old.clone(), ownG: map[string]bool{}, ownU: map[string]bool{},
		goneGroups: map[string]bool{}, goneUsers: map[string]bool{}, staleUsers: map[string]bool{}}
	entries, glink, err := s.groupRound(ctx, old.groupsLink)
	if err != nil {
		if rs, ok := resync(err, "groups"); ok {
			return nil, 0, rs
		}
		return nil, 0, fmt.Errorf("msgraph: read group changes (GET /groups/delta): %w", describe(err, "GroupMember.Read.All"))
	}
	changes := w.applyGroups(entries)
	w.st.groupsLink = glink
	if old.usersTracked {
		uentries, ulink, err := s.userRound(ctx, old.usersLink)
		if err != nil {
			if rs, ok := resync(err, "users"); ok {
				return nil, 0, rs
			}
			return nil, 0, fmt.Errorf("msgraph: read user changes (GET /users/delta): %w", describe(err, "User.Read.All"))
		}
		changes += w.applyUsers(uentries)
		w.st.usersLink = ulink
	}
	w.st.linkAt = now
	snap, err := w.resolveAndView(ctx)
	if err != nil {
		return nil, 0, err
	}
	return snap, changes, nil
}

// applyGroups applies a groups delta round and returns how many groups
// changed. A group may come on several pages; entries are applied in order.
func (w *stateWriter) applyGroups(entries []models.Groupable) int {
	changed := map[string]bool{}
	edits := map[string]map[string]memberChange{}
	for _, g := range entries {
		id := deref(g.GetId())
		if id == "" {
			continue
		}
		changed[id] = true
		if _, removed := g.GetAdditionalData()["@removed"]; removed {
			delete(w.st.groups, id)
			delete(edits, id)
			w.goneGroups[id] = true
			continue
		}
		delete(w.goneGroups, id)
		rec := w.group(id)
		if g.GetDisplayName() != nil {
			// Graph sends every selected property of a changed group; one
			// without its name (a partial object) leaves the kind as known.
			rec.name = deref(g.GetDisplayName())
			rec.flags = flagsOf(propsOf(g)) | rec.flags&gComplete
		}
		if rec.flags&gComplete == 0 {
			continue // members unknown: read in full if it comes to matter
		}
		for _, m := range readMemberChanges(g.GetAdditionalData()) {
			if edits[id] == nil {
				edits[id] = map[string]memberChange{}
			}
			edits[id][m.id] = m // the last entry for a member wins
		}
	}
	for id, es := range edits {
		if rec := w.st.groups[id]; rec != nil && rec.flags&gComplete != 0 {
			rec.applyEdits(&w.st.ids, es)
		}
	}
	return len(changed)
}

// applyEdits merges member changes into the sorted member lists; users
// new to the state get a place in ids.
func (g *groupRec) applyEdits(ids *idTable, es map[string]memberChange) {
	var addU []int32
	var addG []string
	var addO []otherRef
	dropU := map[int32]bool{}
	for id, e := range es {
		if i, ok := ids.find(id); ok {
			dropU[i] = true
		}
		if !e.present {
			continue
		}
		switch e.kind {
		case "user":
			addU = append(addU, ids.intern(id))
		case "group":
			addG = append(addG, id)
		default:
			addO = append(addO, otherRef{id: id, kind: e.kind})
		}
	}
	slices.Sort(addU)
	slices.Sort(addG)
	slices.SortFunc(addO, func(a, b otherRef) int { return cmp.Compare(a.id, b.id) })
	drop := func(id string) bool { _, touched := es[id]; return touched }
	g.users = mergeSorted(g.users, addU, func(i int32) bool { return dropU[i] }, func(i int32) int32 { return i })
	g.groups = mergeSorted(g.groups, addG, drop, func(s string) string { return s })
	g.others = mergeSorted(g.others, addO, drop, func(o otherRef) string { return o.id })
}

// mergeSorted returns list without the keys drop says, with adds merged
// in; both inputs are sorted by key, and so is the result.
func mergeSorted[T any, K cmp.Ordered](list, adds []T, drop func(K) bool, key func(T) K) []T {
	out := make([]T, 0, len(list)+len(adds))
	i, j := 0, 0
	for i < len(list) || j < len(adds) {
		switch {
		case j == len(adds) || (i < len(list) && key(list[i]) < key(adds[j])):
			if !drop(key(list[i])) {
				out = append(out, list[i])
			}
			i++
		case i == len(list) || key(adds[j]) < key(list[i]):
			out = append(out, adds[j])
			j++
		default:
			out = append(out, adds[j])
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// applyUsers applies a users delta round and returns how many users changed.
func (w *stateWriter) applyUsers(entries []models.Userable) int {
	changed := map[string]bool{}
	for _, u := range entries {
		id := deref(u.GetId())
		if id == "" {
			continue
		}
		changed[id] = true
		if _, removed := u.GetAdditionalData()["@removed"]; removed {
			delete(w.st.users, id)
			w.goneUsers[id] = true
			continue
		}
		delete(w.goneUsers, id)
		if u.GetUserPrincipalName() == nil {
			// Every user has a UPN: an object without one is partial, so
			// read the user again if the snapshot needs it.
			w.staleUsers[id] = true
			continue
		}
		w.st.users[id] = w.s.userRecord(u)
		w.ownU[id] = true
		delete(w.staleUsers, id)
	}
	return len(changed)
}

// userRecord keeps what the snapshot's user needs.
func (s *Source) userRecord(u models.Userable) *userRec {
	rec := &userRec{upn: deref(u.GetUserPrincipalName()), mail: deref(u.GetMail())}
	if e := u.GetAccountEnabled(); e != nil {
		rec.flags |= uEnabledKnown
		if *e {
			rec.flags |= uEnabled
		}
	}
	if strings.EqualFold(deref(u.GetUserType()), "Guest") {
		rec.flags |= uGuest
	}
	for _, a := range s.userAttrs {
		if v := userAttribute(u, a); v != "" {
			if rec.attrs == nil {
				rec.attrs = map[string]string{}
			}
			rec.attrs[a] = v
		}
	}
	return rec
}

// groupRound follows a groups delta round to its deltaLink.
func (s *Source) groupRound(ctx context.Context, link string) ([]models.Groupable, string, error) {
	return deltaRound(ctx, link, "groups", func(ctx context.Context, link string) (deltaPage[models.Groupable], error) {
		return s.client.Groups().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
	})
}

// userRound follows a users delta round to its deltaLink.
func (s *Source) userRound(ctx context.Context, link string) ([]models.Userable, string, error) {
	return deltaRound(ctx, link, "users", func(ctx context.Context, link string) (deltaPage[models.Userable], error) {
		return s.client.Users().Delta().WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
	})
}

// deltaPage is what the SDK's delta responses have in common.
type deltaPage[T any] interface {
	GetValue() []T
	GetOdataNextLink() *string
	GetOdataDeltaLink() *string
}

// deltaRound follows nextLinks from link to the round's deltaLink and
// returns every object on the way.
func deltaRound[T any](ctx context.Context, link, what string, get func(context.Context, string) (deltaPage[T], error)) ([]T, string, error) {
	var out []T
	for {
		page, err := get(ctx, link)
		if err != nil {
			return nil, "", err
		}
		out = append(out, page.GetValue()...)
		if next := deref(page.GetOdataNextLink()); next != "" {
			link = next
			continue
		}
		delta := deref(page.GetOdataDeltaLink())
		if delta == "" {
			return nil, "", fmt.Errorf("Graph ended a %s delta round without @odata.deltaLink", what)
		}
		return out, delta, nil
	}
}

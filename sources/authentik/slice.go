package authentik

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

var _ gsync.SliceSource = (*Source)(nil)

// WithMapping tells the source which user field the mapping keys users on,
// so that a slice finds a user by that field with one filtered request
// (GET core/users/?username=...) instead of guessing.
func WithMapping(m config.Mapping) Option { return func(o *options) { o.userKey = m.User.Key } }

// The slice's documents: a group with its children (authentik 2025.12 and
// later list them; earlier versions do not, and Children stays nil), a
// user with the pks of its direct groups.
type (
	sliceGroup struct {
		apiGroup
		Children *[]string `json:"children"`
	}
	sliceUser struct {
		apiUser
		Groups []string `json:"groups"`
	}
)

// uidPattern is a user's uid: the SHA-256 hex digest that is the source's
// user id.
var uidPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// groupPKPattern is a group's pk, a UUID.
var groupPKPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// SnapshotSlice reads the slice's users with their groups and those
// groups' ancestors, and the slice's groups with their members and
// descendants (see gsync.SliceSource). Like Snapshot it reads again when
// authentik changed under it, and returns all of it or an error.
func (s *Source) SnapshotSlice(ctx context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	before := s.stats.at()
	defer func() {
		rd := s.stats.since(before)
		rd.Mode = "slice"
		s.mu.Lock()
		s.lastRead = rd
		s.mu.Unlock()
	}()
	for attempt := 1; ; attempt++ {
		snap, err := s.readSlice(ctx, sl)
		var changed *errChanged
		switch {
		case err == nil:
			return snap, nil
		case errors.As(err, &changed) && attempt < maxReads:
			s.stats.Rereads.Add(1)
			s.log.Warn("authentik changed during a slice read; reading again", zap.String("why", changed.why), zap.Int("attempt", attempt))
		case errors.As(err, &changed):
			return nil, fmt.Errorf("authentik: %d slice reads in a row were inconsistent, the last because %s; if nothing is changing in authentik, give the token's user the permissions to view every group and user", maxReads, changed.why)
		default:
			return nil, err
		}
	}
}

// sliceRead accumulates one slice read.
type sliceRead struct {
	s      *Source
	groups map[string]*sliceGroup // every group read, by pk
	out    map[string]*gsync.Group
	users  map[string]gsync.User // by uid
	skips  []gsync.Skip
}

func (s *Source) readSlice(ctx context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	r := &sliceRead{s: s, groups: map[string]*sliceGroup{}, out: map[string]*gsync.Group{}, users: map[string]gsync.User{}}
	for _, key := range sl.Users {
		if err := r.readUser(ctx, key); err != nil {
			return nil, err
		}
	}
	for _, name := range sl.Groups {
		if err := r.readGroupTree(ctx, name); err != nil {
			return nil, err
		}
	}
	snap := &gsync.Snapshot{Skipped: r.skips}
	for _, g := range r.out {
		g.Users = sortedSet(g.Users)
		g.Groups = sortedSet(g.Groups)
		snap.Groups = append(snap.Groups, *g)
	}
	for _, u := range r.users {
		snap.Users = append(snap.Users, u)
	}
	slices.SortFunc(snap.Groups, func(a, b gsync.Group) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(snap.Users, func(a, b gsync.User) int { return strings.Compare(a.ID, b.ID) })
	return snap, nil
}

// findUser returns the users a slice's user names: by pk, by uid, or by
// the mapping's key field. None is not an error.
func (r *sliceRead) findUser(ctx context.Context, key string) ([]sliceUser, error) {
	s := r.s
	if pk, err := strconv.Atoi(key); err == nil && pk > 0 && s.userKey != "attribute:pk" {
		var u sliceUser
		err := s.get(ctx, "core/users/"+key+"/", nil, &u)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("authentik: read user pk %s: %w", key, err)
		}
		return []sliceUser{u}, nil
	}
	var field string
	switch k := s.userKey; {
	case k == "id" || uidPattern.MatchString(key) && !strings.HasPrefix(k, "attribute:"):
		// The uid is derived, not stored: authentik cannot filter on it,
		// so the users are listed and the one with this uid kept.
		all, err := list[sliceUser](ctx, s, "core/users/", url.Values{}, func(u sliceUser) string { return strconv.Itoa(u.PK) })
		if err != nil {
			return nil, fmt.Errorf("authentik: find user with uid %s: %w", key, err)
		}
		return slices.DeleteFunc(all, func(u sliceUser) bool { return u.UID != key }), nil
	case k == "username" || k == "upn":
		field = "username"
	case k == "mail":
		field = "email"
	case k == "attribute:pk":
		field = "pk"
	case k == "attribute:uuid" || k == "attribute:name" || k == "attribute:path" || k == "attribute:type":
		field = strings.TrimPrefix(k, "attribute:")
	case strings.HasPrefix(k, "attribute:"):
		field = "attributes"
		key = fmt.Sprintf(`{%q:%q}`, strings.TrimPrefix(k, "attribute:"), key)
	default:
		// No mapping given: a login name, else an e-mail address.
		us, err := r.usersBy(ctx, "username", key)
		if err != nil || len(us) > 0 || !strings.Contains(key, "@") {
			return us, err
		}
		field = "email"
	}
	return r.usersBy(ctx, field, key)
}

func (r *sliceRead) usersBy(ctx context.Context, field, value string) ([]sliceUser, error) {
	us, err := list[sliceUser](ctx, r.s, "core/users/", url.Values{field: {value}}, func(u sliceUser) string { return strconv.Itoa(u.PK) })
	if err != nil {
		return nil, fmt.Errorf("authentik: find the user with %s %q: %w", field, value, err)
	}
	return us, nil
}

// readUser adds a user, the groups they are a direct member of, and those
// groups' ancestors with the links between them.
func (r *sliceRead) readUser(ctx context.Context, key string) error {
	found, err := r.findUser(ctx, key)
	if err != nil {
		return err
	}
	for _, u := range found {
		if u.UID == "" {
			return fmt.Errorf("authentik: user %q (pk %d) came without a uid", u.Username, u.PK)
		}
		if serviceAccount(u.Type) && !r.s.cfg.IncludeServiceAccounts {
			// A full read leaves service accounts out of every group.
			continue
		}
		r.users[u.UID] = snapshotUser(u.apiUser)
		queue := slices.Clone(u.Groups)
		for _, pk := range u.Groups {
			g, err := r.group(ctx, pk)
			if err != nil {
				return err
			}
			if g == nil {
				return &errChanged{why: fmt.Sprintf("user %q lists group %s, which does not exist", u.Username, pk)}
			}
			r.out[pk].Users = append(r.out[pk].Users, u.UID)
		}
		// Walk up: each parent's members include the child's.
		for seen := map[string]bool{}; len(queue) > 0; queue = queue[1:] {
			pk := queue[0]
			if seen[pk] {
				continue
			}
			seen[pk] = true
			g, err := r.group(ctx, pk)
			if err != nil {
				return err
			}
			for _, p := range parentsOf(g.apiGroup) {
				pg, err := r.group(ctx, p)
				if err != nil {
					return err
				}
				if pg == nil {
					return &errChanged{why: fmt.Sprintf("group %q names parent %s, which does not exist", g.Name, p)}
				}
				r.out[p].Groups = append(r.out[p].Groups, pk)
				queue = append(queue, p)
			}
		}
	}
	return nil
}

// group reads a group by pk once; nil if there is none.
func (r *sliceRead) group(ctx context.Context, pk string) (*sliceGroup, error) {
	if g, ok := r.groups[pk]; ok {
		return g, nil
	}
	var g sliceGroup
	err := r.s.get(ctx, "core/groups/"+pk+"/", url.Values{"include_users": {"false"}, "include_children": {"true"}}, &g)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		r.groups[pk] = nil
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("authentik: read group %s: %w", pk, err)
	}
	r.keep(&g)
	return &g, nil
}

func (r *sliceRead) keep(g *sliceGroup) {
	r.groups[g.PK] = g
	if r.out[g.PK] == nil {
		r.out[g.PK] = &gsync.Group{ID: g.PK, Name: g.Name}
	}
}

func parentsOf(g apiGroup) []string {
	parents := slices.Clone(g.Parents)
	if g.Parent != nil && *g.Parent != "" && !slices.Contains(parents, *g.Parent) {
		parents = append(parents, *g.Parent)
	}
	return parents
}

// readGroupTree adds the groups a slice's group names (by pk or by name),
// their descendants, and all their members, as a full read has them.
func (r *sliceRead) readGroupTree(ctx context.Context, name string) error {
	var roots []string
	if groupPKPattern.MatchString(name) {
		g, err := r.group(ctx, name)
		if err != nil {
			return err
		}
		if g != nil {
			roots = append(roots, g.PK)
		}
	}
	if len(roots) == 0 {
		gs, err := list[sliceGroup](ctx, r.s, "core/groups/", url.Values{"name": {name}, "include_users": {"false"}, "include_children": {"true"}},
			func(g sliceGroup) string { return g.PK })
		if err != nil {
			return fmt.Errorf("authentik: find group %q: %w", name, err)
		}
		for i := range gs {
			r.keep(&gs[i])
			roots = append(roots, gs[i].PK)
		}
	}
	if len(roots) == 0 {
		return nil
	}
	// Walk down. authentik 2025.12 lists a group's children; before, only
	// the child names its parent, so the groups are listed to find them.
	var children map[string][]string
	tree := map[string]bool{}
	for queue := roots; len(queue) > 0; queue = queue[1:] {
		pk := queue[0]
		if tree[pk] {
			continue
		}
		tree[pk] = true
		g, err := r.group(ctx, pk)
		if err != nil {
			return err
		}
		if g == nil {
			return &errChanged{why: fmt.Sprintf("group %s vanished during the read", pk)}
		}
		kids := []string(nil)
		if g.Children != nil {
			kids = *g.Children
		} else {
			if children == nil {
				if children, err = r.legacyChildren(ctx); err != nil {
					return err
				}
			}
			kids = children[pk]
		}
		for _, c := range kids {
			if _, err := r.group(ctx, c); err != nil {
				return err
			}
			r.out[pk].Groups = append(r.out[pk].Groups, c)
			queue = append(queue, c)
		}
	}
	return r.readMembers(ctx, tree)
}

// legacyChildren lists every group to find each one's children, for
// authentik before 2025.12.
func (r *sliceRead) legacyChildren(ctx context.Context) (map[string][]string, error) {
	all, err := list[sliceGroup](ctx, r.s, "core/groups/", url.Values{"include_users": {"false"}}, func(g sliceGroup) string { return g.PK })
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for i := range all {
		g := &all[i]
		if _, ok := r.groups[g.PK]; !ok {
			r.keep(g)
		}
		for _, p := range parentsOf(g.apiGroup) {
			out[p] = append(out[p], g.PK)
		}
	}
	return out, nil
}

// readMembers lists the users of the tree's groups (groups_by_pk: one
// paged list for all of them) and adds each group's members.
func (r *sliceRead) readMembers(ctx context.Context, tree map[string]bool) error {
	q := url.Values{"include_groups": {"false"}}
	for pk := range tree {
		if len(r.groups[pk].Users) > 0 {
			q.Add("groups_by_pk", pk)
		}
	}
	if len(q["groups_by_pk"]) == 0 {
		return nil
	}
	slices.Sort(q["groups_by_pk"])
	users, err := list[apiUser](ctx, r.s, "core/users/", q, func(u apiUser) string { return strconv.Itoa(u.PK) })
	if err != nil {
		return fmt.Errorf("authentik: list the members of %d group(s): %w", len(q["groups_by_pk"]), err)
	}
	byPK := make(map[int]*apiUser, len(users))
	for i := range users {
		byPK[users[i].PK] = &users[i]
	}
	for pk := range tree {
		g := r.groups[pk]
		others := 0
		for _, upk := range g.Users {
			u := byPK[upk]
			if u == nil {
				return &errChanged{why: fmt.Sprintf("group %q lists user pk %d, which the list of its members lacks", g.Name, upk)}
			}
			if u.UID == "" {
				return fmt.Errorf("authentik: user %q (pk %d) came without a uid", u.Username, u.PK)
			}
			if serviceAccount(u.Type) && !r.s.cfg.IncludeServiceAccounts {
				others++
				continue
			}
			r.out[pk].Users = append(r.out[pk].Users, u.UID)
			r.users[u.UID] = snapshotUser(*u)
		}
		if others > 0 {
			r.skips = append(r.skips, gsync.Skip{Kind: "member", ID: g.PK, Name: g.Name, Reason: gsync.ReasonNotUserOrGroup,
				Detail: fmt.Sprintf("members that are neither users nor groups: %d service account(s) (set source.authentik.include_service_accounts to sync them)", others)})
		}
	}
	return nil
}

func snapshotUser(u apiUser) gsync.User {
	return gsync.User{ID: u.UID, UPN: u.Username, Mail: u.Email, Disabled: u.IsActive != nil && !*u.IsActive,
		Guest: u.Type == "external", Attributes: userAttributes(u)}
}

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

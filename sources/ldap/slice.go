package ldap

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/groupsync/groupsync/internal/retry"
	gsync "github.com/groupsync/groupsync/sync"
)

var _ gsync.SliceSource = (*Source)(nil)

// SnapshotSlice reads the slice's users with the groups they are in,
// directly or through nesting, and the slice's groups with their whole
// membership (see gsync.SliceSource), over one connection, retried whole
// as Snapshot is.
//
// A user is found by the attribute the mapping keys on (WithMapping), or
// without a mapping by upn_attribute or mail_attribute, and by the id
// attribute when the name has the id's form. Their groups are found by
// searching for groups whose member attribute holds the user's DN, then
// each found group's DN, up to the top: the directory's own member
// attribute is what a full read resolves, and memberOf (where there is
// one) leaves out groups outside its domain and needs an overlay on
// OpenLDAP. With membership in_chain, AD answers the user's groups in one
// search, as a full read asks it for the groups' users.
//
// A group's slice reads the users as a full read does (a paged search;
// member DNs could each be a lookup otherwise, far more requests for a
// large group), then the group and its subgroups with their members.
func (s *Source) SnapshotSlice(ctx context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	searches, retries, waited := s.stats.Searches.Load(), s.stats.Retries.Load(), s.stats.WaitedNanos.Load()
	defer func() {
		rd := gsync.SourceRead{Mode: "slice", Requests: s.stats.Searches.Load() - searches,
			Retries: s.stats.Retries.Load() - retries, Waited: time.Duration(s.stats.WaitedNanos.Load() - waited)}
		s.mu.Lock()
		s.lastRead = rd
		s.mu.Unlock()
	}()
	var snap *gsync.Snapshot
	hooks := retry.Hooks{Retrying: func(r retry.Result, wait time.Duration) { s.stats.Retries.Add(1) }}
	out, err := s.policy().Do(ctx, hooks, func(ctx context.Context) retry.Result {
		var err error
		if snap, err = s.readSlice(ctx, sl); err != nil {
			return retry.Result{Err: err, Retry: transient(err)}
		}
		return retry.Result{}
	})
	s.stats.WaitedNanos.Add(int64(out.Waited))
	if err != nil {
		return nil, err
	}
	return snap, nil
}

func (s *Source) newReader(ctx context.Context, conn *goldap.Conn) *reader {
	return &reader{s: s, ctx: ctx, conn: conn,
		users: map[dnKey]*gsync.User{}, userIDs: map[string]string{},
		groups: map[dnKey]*gsync.Group{}, groupIDs: map[string]string{},
		members: map[dnKey][]string{}, looked: map[dnKey]verdict{},
		others: map[dnKey]map[string]int{}, outside: map[dnKey][]string{}}
}

func (s *Source) readSlice(ctx context.Context, sl gsync.Slice) (*gsync.Snapshot, error) {
	conn, done, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if s.cfg.Membership == "in_chain" {
		if err := s.newReader(ctx, conn).requireAD(); err != nil {
			return nil, err
		}
	}
	var parts []*gsync.Snapshot
	for _, key := range sl.Users {
		snap, err := s.newReader(ctx, conn).userSlice(key)
		if err != nil {
			return nil, err
		}
		parts = append(parts, snap)
	}
	if len(sl.Groups) > 0 {
		snap, err := s.newReader(ctx, conn).groupSlice(sl.Groups)
		if err != nil {
			return nil, err
		}
		parts = append(parts, snap)
	}
	return mergeSnapshots(parts), nil
}

// userFilter is the filter that finds a slice's user by key: the
// attribute the mapping keys on, or upn and mail without a mapping, and
// the id attribute when key has the id's form.
func (s *Source) userFilter(key string) string {
	c := s.cfg.Users
	var attrs []string
	switch k := s.userKey; {
	case k == "upn" || k == "username":
		attrs = []string{c.UPNAttribute}
	case k == "mail":
		attrs = []string{c.MailAttribute}
	case strings.HasPrefix(k, "attribute:"):
		attrs = []string{strings.TrimPrefix(k, "attribute:")}
	case k == "":
		attrs = []string{c.UPNAttribute, c.MailAttribute}
	}
	var terms []string
	for _, a := range attrs {
		terms = append(terms, "("+a+"="+goldap.EscapeFilter(key)+")")
	}
	if v, ok := idAssertion(c.IDAttribute, key); ok {
		terms = append(terms, "("+c.IDAttribute+"="+v+")")
	}
	switch len(terms) {
	case 0:
		return ""
	case 1:
		return terms[0]
	}
	return "(|" + strings.Join(terms, "") + ")"
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// idAssertion is the filter value that finds an entry by the id string
// idValue makes of the id attribute: objectGUID back in its binary form,
// a SID as AD accepts it (S-1-...), a UUID as it is. ok is false when key
// cannot be such an id, so that the server is not asked (OpenLDAP refuses
// values entryUUID's syntax does not allow).
func idAssertion(attr, key string) (string, bool) {
	switch strings.ToLower(attr) {
	case "objectguid":
		if !uuidPattern.MatchString(key) {
			return "", false
		}
		raw, err := hex.DecodeString(strings.ReplaceAll(key, "-", ""))
		if err != nil || len(raw) != 16 {
			return "", false
		}
		var b [16]byte
		// The first three fields are little-endian on the wire (GUIDString).
		binary.LittleEndian.PutUint32(b[0:4], binary.BigEndian.Uint32(raw[0:4]))
		binary.LittleEndian.PutUint16(b[4:6], binary.BigEndian.Uint16(raw[4:6]))
		binary.LittleEndian.PutUint16(b[6:8], binary.BigEndian.Uint16(raw[6:8]))
		copy(b[8:], raw[8:])
		var sb strings.Builder
		for _, c := range b {
			fmt.Fprintf(&sb, `\%02x`, c)
		}
		return sb.String(), true
	case "objectsid":
		return goldap.EscapeFilter(key), strings.HasPrefix(key, "S-")
	case "entryuuid":
		return key, uuidPattern.MatchString(key)
	case "dn", "distinguishedname":
		return "", false
	}
	return goldap.EscapeFilter(key), true
}

// userSlice reads the users key names and the groups they are in.
func (r *reader) userSlice(key string) (*gsync.Snapshot, error) {
	filter := r.s.userFilter(key)
	if filter == "" {
		return &gsync.Snapshot{}, nil // keyed by a DN: not found by key
	}
	if err := r.readUsersWhere(fmt.Sprintf("user %q", key), filter); err != nil {
		return nil, err
	}
	snap := &gsync.Snapshot{}
	for dn, u := range r.users {
		snap.Users = append(snap.Users, *u)
		if err := r.groupsOf(r.userIDs[u.ID], dn, u.ID); err != nil {
			return nil, err
		}
	}
	for _, k := range r.order {
		g := r.groups[k]
		g.Users, g.Groups = dedupe(g.Users), dedupe(g.Groups)
		snap.Groups = append(snap.Groups, *g)
	}
	return snap, nil
}

// groupsOf adds the groups the user (DN userDN) is in and the groups those
// are in, up to the top, with the links between them.
func (r *reader) groupsOf(userDN string, userKey dnKey, userID string) error {
	c := r.s.cfg.Groups
	if r.s.cfg.Membership == "in_chain" {
		filter := "(&" + c.Filter + "(" + c.MemberAttribute + ":" + inChainRule + ":=" + goldap.EscapeFilter(userDN) + "))"
		entries, err := r.search(fmt.Sprintf("groups of %s in chain", userDN), c.BaseDN, filter, goldap.ScopeWholeSubtree, []string{c.IDAttribute, c.NameAttribute})
		if err != nil {
			return err
		}
		for _, e := range entries {
			g, err := r.sliceGroup(e, "")
			if err != nil {
				return err
			}
			g.Users = append(g.Users, userID)
		}
		return nil
	}
	// Any group under base_dn: a full read reads a group outside the
	// filter when a synced group contains it (not synced, but walked
	// through). Which of them groups.filter selects is asked at the end.
	classes := "(|" + c.Filter
	for _, cl := range groupClasses {
		classes += "(objectClass=" + cl + ")"
	}
	classes += ")"
	type step struct {
		dn    string
		child *gsync.Group // nil for the user
	}
	var found []*goldap.Entry
	queue := []step{{dn: userDN}}
	seen := map[dnKey]bool{userKey: true}
	for ; len(queue) > 0; queue = queue[1:] {
		st := queue[0]
		filter := "(&" + classes + "(" + c.MemberAttribute + "=" + goldap.EscapeFilter(st.dn) + "))"
		entries, err := r.search(fmt.Sprintf("groups that contain %s", st.dn), r.s.cfg.BaseDN, filter, goldap.ScopeWholeSubtree,
			[]string{c.IDAttribute, c.NameAttribute})
		if err != nil {
			return err
		}
		for _, e := range entries {
			p, err := parseDN(e.DN)
			if err != nil {
				return fmt.Errorf("ldap: group entry %q: the server sent a DN that does not parse: %v", e.DN, err)
			}
			g := r.groups[p.key]
			if g == nil {
				if g, err = r.sliceGroup(e, notSyncedNested); err != nil {
					return err
				}
				found = append(found, e)
			}
			if st.child == nil {
				g.Users = append(g.Users, userID)
			} else {
				g.Groups = append(g.Groups, st.child.ID)
			}
			if !seen[p.key] {
				seen[p.key] = true
				queue = append(queue, step{dn: e.DN, child: g})
			}
		}
	}
	return r.markSynced(found)
}

// sliceGroup records a group found for a user's slice, without members.
func (r *reader) sliceGroup(e *goldap.Entry, notSynced string) (*gsync.Group, error) {
	g, _, err := r.newGroup(e, notSynced)
	return g, err
}

// markSynced clears NotSynced on the found groups that groups.filter
// selects under groups.base_dn: one search for them all, by name, whose
// DNs are compared.
func (r *reader) markSynced(found []*goldap.Entry) error {
	if len(found) == 0 {
		return nil
	}
	c := r.s.cfg.Groups
	var names []string
	for _, e := range found {
		n := "(" + c.NameAttribute + "=" + goldap.EscapeFilter(e.GetEqualFoldAttributeValue(c.NameAttribute)) + ")"
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	filter := "(&" + c.Filter + "(|" + strings.Join(names, "") + "))"
	entries, err := r.search("which of the user's groups groups.filter selects", c.BaseDN, filter, goldap.ScopeWholeSubtree, []string{"1.1"})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if p, err := parseDN(e.DN); err == nil && r.groups[p.key] != nil {
			r.groups[p.key].NotSynced = ""
		}
	}
	return nil
}

// inGroupFilter reports whether groups.filter under groups.base_dn
// selects the group at dn: a base-scope search with the filter.
func (r *reader) inGroupFilter(dn string) (bool, error) {
	p, err := parseDN(dn)
	if err != nil || !p.within(r.s.grps) {
		return false, nil
	}
	entries, err := r.baseRead(dn, r.s.cfg.Groups.Filter, []string{"1.1"})
	if err != nil {
		return false, &opError{op: fmt.Sprintf("check whether groups.filter selects %s", dn), err: err}
	}
	return len(entries) == 1, nil
}

// groupSlice reads the groups names name (by name_attribute or the id
// attribute) with their subgroups and members, as a full read does.
func (r *reader) groupSlice(names []string) (*gsync.Snapshot, error) {
	r.slice = true
	c := r.s.cfg.Groups
	var terms []string
	for _, n := range names {
		terms = append(terms, "("+c.NameAttribute+"="+goldap.EscapeFilter(n)+")")
		if v, ok := idAssertion(c.IDAttribute, n); ok {
			terms = append(terms, "("+c.IDAttribute+"="+v+")")
		}
	}
	filter := "(&" + c.Filter + "(|" + strings.Join(terms, "") + "))"
	entries, err := r.search(fmt.Sprintf("groups %q", names), c.BaseDN, filter, goldap.ScopeWholeSubtree, r.groupAttrs())
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return &gsync.Snapshot{}, nil
	}
	if err := r.readUsers(); err != nil {
		return nil, err
	}
	for _, e := range entries {
		if _, err := r.addGroup(e, ""); err != nil {
			return nil, err
		}
	}
	if r.s.cfg.Membership == "in_chain" {
		if err := r.inChain(); err != nil {
			return nil, err
		}
	} else if err := r.resolve(); err != nil {
		return nil, err
	}
	return r.snapshot(), nil
}

// mergeSnapshots joins the parts of a slice: a group read in several parts
// has the members and subgroups of each.
func mergeSnapshots(parts []*gsync.Snapshot) *gsync.Snapshot {
	out := &gsync.Snapshot{}
	groups := map[string]int{}
	users := map[string]bool{}
	for _, p := range parts {
		for _, g := range p.Groups {
			i, ok := groups[g.ID]
			if !ok {
				groups[g.ID] = len(out.Groups)
				out.Groups = append(out.Groups, g)
				continue
			}
			m := &out.Groups[i]
			m.Users = dedupe(append(m.Users, g.Users...))
			m.Groups = dedupe(append(m.Groups, g.Groups...))
		}
		for _, u := range p.Users {
			if !users[u.ID] {
				users[u.ID] = true
				out.Users = append(out.Users, u)
			}
		}
		out.Skipped = append(out.Skipped, p.Skipped...)
	}
	slices.SortFunc(out.Groups, func(a, b gsync.Group) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Users, func(a, b gsync.User) int { return strings.Compare(a.ID, b.ID) })
	return out
}

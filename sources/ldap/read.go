package ldap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	gsync "github.com/groupsync/groupsync/sync"
)

// adCapability is LDAP_CAP_ACTIVE_DIRECTORY_OID in the rootDSE's
// supportedCapabilities: the server is Active Directory (or AD LDS).
const adCapability = "1.2.840.113556.1.4.800"

// inChainRule is LDAP_MATCHING_RULE_IN_CHAIN.
const inChainRule = "1.2.840.113556.1.4.1941"

// groupClasses are the objectClass values of the group entries a member DN
// that no search returned may be. They are read as groups outside the
// filter; any other entry is not.
var groupClasses = []string{"group", "groupofnames", "groupofuniquenames", "groupofurls", "groupofentries"}

// personClasses mark a user that users.filter or users.base_dn left out.
var personClasses = []string{"user", "person", "inetorgperson", "organizationalperson", "posixaccount"}

// reader is one read of the directory over one connection.
type reader struct {
	s    *Source
	ctx  context.Context
	conn *goldap.Conn

	users    map[dnKey]*gsync.User
	userIDs  map[string]string // id → DN, to catch ids that are not unique
	groups   map[dnKey]*gsync.Group
	groupIDs map[string]string
	order    []dnKey // groups in the order read, to resolve members

	members map[dnKey][]string // group → member DNs, until resolved
	looked  map[dnKey]verdict  // member DNs already looked up
	others  map[dnKey]map[string]int
	outside map[dnKey][]string
	skips   []gsync.Skip

	// slice: the read covers a slice (slice.go), so a nested group that
	// no search returned may still be one of groups.filter's.
	slice bool
}

// notSyncedNested is why a nested group outside the filter is not synced.
const notSyncedNested = "a nested group outside source.ldap.groups.filter or groups.base_dn; read only for the members it gives the groups that contain it"

func (s *Source) read(ctx context.Context) (*gsync.Snapshot, error) {
	conn, done, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r := s.newReader(ctx, conn)
	if s.cfg.Membership == "in_chain" {
		if err := r.requireAD(); err != nil {
			return nil, err
		}
	}
	if err := r.readUsers(); err != nil {
		return nil, err
	}
	if err := r.readGroups(); err != nil {
		return nil, err
	}
	if s.cfg.Membership == "in_chain" {
		if err := r.inChain(); err != nil {
			return nil, err
		}
	} else if err := r.resolve(); err != nil {
		return nil, err
	}
	return r.snapshot(), nil
}

// search runs a paged search and returns every entry, or an error: a page
// that fails fails the search.
func (r *reader) search(what string, base, filter string, scope int, attrs []string) ([]*goldap.Entry, error) {
	req := goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	paging := goldap.NewControlPaging(uint32(r.s.cfg.PageSize))
	req.Controls = []goldap.Control{paging}
	var out []*goldap.Entry
	referrals := 0
	for {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		r.s.stats.Searches.Add(1)
		r.s.stats.Pages.Add(1)
		res, err := r.conn.Search(req)
		if err != nil {
			return nil, r.searchError(what, base, filter, err)
		}
		out = append(out, res.Entries...)
		referrals += len(res.Referrals)
		ctrl, _ := goldap.FindControl(res.Controls, goldap.ControlTypePaging).(*goldap.ControlPaging)
		if ctrl == nil || len(ctrl.Cookie) == 0 {
			break
		}
		paging.SetCookie(ctrl.Cookie)
	}
	if referrals > 0 {
		// AD answers searches at a domain's root with references to its
		// DNS and configuration partitions, which hold no users.
		r.s.log.Debug("LDAP search returned referrals, not followed", zap.String("what", what), zap.Int("referrals", referrals))
	}
	return out, nil
}

func (r *reader) searchError(what, base, filter string, err error) error {
	var le *goldap.Error
	hint := ""
	if errors.As(err, &le) {
		switch le.ResultCode {
		case goldap.LDAPResultNoSuchObject:
			hint = fmt.Sprintf("%s does not exist on the server, or the bind account may not see it; check the base DN setting and the account's read access", base)
		case goldap.LDAPResultSizeLimitExceeded:
			hint = "the server's size limit was hit although the search is paged; lower source.ldap.page_size (AD's MaxPageSize is 1000)"
		case goldap.LDAPResultInsufficientAccessRights:
			hint = "the bind account may not read there; grant it read access"
		case goldap.LDAPResultOperationsError:
			if strings.Contains(strings.ToLower(le.Error()), "successful bind") {
				hint = "Active Directory requires a bind; set source.ldap.bind_dn and bind_password"
			}
		case goldap.LDAPResultFilterError, goldap.ErrorFilterCompile:
			hint = "the filter " + filter + " is malformed"
		case goldap.LDAPResultInappropriateMatching:
			hint = "the server does not know a matching rule in the filter"
		}
	}
	return &opError{op: fmt.Sprintf("search %s under %q with %s", what, base, filter), err: err, hint: hint}
}

func (r *reader) requireAD() error {
	entries, err := r.baseRead("", "(objectClass=*)", []string{"supportedCapabilities"})
	if err != nil {
		return fmt.Errorf("ldap: read the server's rootDSE to check it is Active Directory: %w", err)
	}
	if len(entries) == 1 && slices.Contains(entries[0].GetEqualFoldAttributeValues("supportedCapabilities"), adCapability) {
		return nil
	}
	return errors.New("ldap: source.ldap.membership in_chain needs Active Directory (its rootDSE lacks capability " + adCapability +
		"), and another server would answer the in-chain filter with no members at all; use membership: direct")
}

// baseRead reads one entry without paging.
func (r *reader) baseRead(dn, filter string, attrs []string) ([]*goldap.Entry, error) {
	r.s.stats.Searches.Add(1)
	req := goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
	res, err := r.conn.Search(req)
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

func (r *reader) readUsers() error { return r.readUsersWhere("users", "") }

// readUsersWhere reads the users that users.filter and the extra filter
// (a slice's user, or "" for all) select.
func (r *reader) readUsersWhere(what, extra string) error {
	c := r.s.cfg.Users
	attrs := []string{c.IDAttribute, c.UPNAttribute, c.MailAttribute}
	ad := r.s.cfg.Flavor == "ad"
	if ad {
		attrs = append(attrs, "userAccountControl")
	}
	attrs = append(attrs, r.s.attrs...)
	filter := c.Filter
	if extra != "" {
		filter = "(&" + c.Filter + extra + ")"
	}
	entries, err := r.search(what, c.BaseDN, filter, goldap.ScopeWholeSubtree, attrs)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p, err := parseDN(e.DN)
		if err != nil {
			return fmt.Errorf("ldap: user entry %q: the server sent a DN that does not parse: %v", e.DN, err)
		}
		id, err := entryID(e, c.IDAttribute, "users.id_attribute")
		if err != nil {
			return err
		}
		if other, dup := r.userIDs[id]; dup {
			return fmt.Errorf("ldap: users %s and %s have the same %s %q; ids must be unique: choose another source.ldap.users.id_attribute", other, e.DN, c.IDAttribute, id)
		}
		r.userIDs[id] = e.DN
		u := &gsync.User{ID: id, UPN: e.GetEqualFoldAttributeValue(c.UPNAttribute), Mail: e.GetEqualFoldAttributeValue(c.MailAttribute)}
		for _, a := range r.s.attrs {
			if v := e.GetEqualFoldAttributeValue(a); v != "" {
				if u.Attributes == nil {
					u.Attributes = map[string]string{}
				}
				u.Attributes[a] = v
			}
		}
		if ad {
			if uac := e.GetEqualFoldAttributeValue("userAccountControl"); uac != "" {
				if u.Disabled, err = accountDisabled(uac); err != nil {
					return fmt.Errorf("ldap: user %s: %v", e.DN, err)
				}
			}
		}
		r.users[p.key] = u
	}
	if len(entries) == 0 {
		return nil // no user to mark disabled or guest (a slice's unknown user)
	}
	for _, f := range []struct {
		field, filter string
		set           func(*gsync.User)
	}{
		{"users.disabled_filter", c.DisabledFilter, func(u *gsync.User) { u.Disabled = true }},
		{"users.guest_filter", c.GuestFilter, func(u *gsync.User) { u.Guest = true }},
	} {
		if f.filter == "" {
			continue
		}
		matched, err := r.search(f.field, c.BaseDN, "(&"+c.Filter+extra+f.filter+")", goldap.ScopeWholeSubtree, []string{"1.1"})
		if err != nil {
			return err
		}
		for _, e := range matched {
			if p, err := parseDN(e.DN); err == nil && r.users[p.key] != nil {
				f.set(r.users[p.key])
			}
		}
	}
	return nil
}

// entryID reads an entry's id attribute: present, single-valued, usable.
func entryID(e *goldap.Entry, attr, field string) (string, error) {
	raw := e.GetEqualFoldRawAttributeValues(attr)
	switch {
	case len(raw) == 0 && (strings.EqualFold(attr, "dn") || strings.EqualFold(attr, "distinguishedName")):
		return e.DN, nil
	case len(raw) == 0:
		return "", fmt.Errorf("ldap: %s has no %s, which source.ldap.%s names as the id; choose an attribute every entry has (objectGUID on AD, entryUUID on OpenLDAP)", e.DN, attr, field)
	case len(raw) > 1:
		return "", fmt.Errorf("ldap: %s has %d values of %s; an id must be single-valued: choose another source.ldap.%s", e.DN, len(raw), attr, field)
	}
	id, err := idValue(attr, raw[0])
	if err != nil {
		return "", fmt.Errorf("ldap: %s: %v", e.DN, err)
	}
	if id == "" {
		return "", fmt.Errorf("ldap: %s has an empty %s (source.ldap.%s)", e.DN, attr, field)
	}
	return id, nil
}

func (r *reader) groupAttrs() []string {
	c := r.s.cfg.Groups
	attrs := []string{c.IDAttribute, c.NameAttribute}
	if r.s.cfg.Membership != "in_chain" {
		attrs = append(attrs, c.MemberAttribute)
	}
	return attrs
}

func (r *reader) readGroups() error {
	c := r.s.cfg.Groups
	entries, err := r.search("groups", c.BaseDN, c.Filter, goldap.ScopeWholeSubtree, r.groupAttrs())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := r.addGroup(e, ""); err != nil {
			return err
		}
	}
	return nil
}

// addGroup records a group entry and its member DNs (all ranges of them).
func (r *reader) addGroup(e *goldap.Entry, notSynced string) (*gsync.Group, error) {
	g, p, err := r.newGroup(e, notSynced)
	if err != nil || r.s.cfg.Membership == "in_chain" {
		return g, err
	}
	return g, r.readMembers(e, p)
}

// newGroup records a group entry without its members.
func (r *reader) newGroup(e *goldap.Entry, notSynced string) (*gsync.Group, parsedDN, error) {
	c := r.s.cfg.Groups
	p, err := parseDN(e.DN)
	if err != nil {
		return nil, p, fmt.Errorf("ldap: group entry %q: the server sent a DN that does not parse: %v", e.DN, err)
	}
	id, err := entryID(e, c.IDAttribute, "groups.id_attribute")
	if err != nil {
		return nil, p, err
	}
	if other, dup := r.groupIDs[id]; dup {
		return nil, p, fmt.Errorf("ldap: groups %s and %s have the same %s %q; ids must be unique: choose another source.ldap.groups.id_attribute", other, e.DN, c.IDAttribute, id)
	}
	if u, isUser := r.userIDs[id]; isUser {
		return nil, p, fmt.Errorf("ldap: group %s has the same %s %q as user %s; choose another id attribute", e.DN, c.IDAttribute, id, u)
	}
	name := e.GetEqualFoldAttributeValue(c.NameAttribute)
	if name == "" {
		return nil, p, fmt.Errorf("ldap: group %s has no %s, which source.ldap.groups.name_attribute names as its display name", e.DN, c.NameAttribute)
	}
	r.groupIDs[id] = e.DN
	g := &gsync.Group{ID: id, Name: name, NotSynced: notSynced}
	r.groups[p.key] = g
	r.order = append(r.order, p.key)
	return g, p, nil
}

// readMembers records a group's member DNs, range by range if need be.
func (r *reader) readMembers(e *goldap.Entry, p parsedDN) error {
	c := r.s.cfg.Groups
	whole, ranged, err := rangedValues(e, c.MemberAttribute)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if ranged != nil {
		if len(whole) > 0 {
			return fmt.Errorf("ldap: group %s: the server sent %s both whole and in ranges", e.DN, c.MemberAttribute)
		}
		vals, n, err := allRangedValues(e.DN, c.MemberAttribute, ranged, func(start int) (*goldap.Entry, error) {
			r.s.stats.RangeRequests.Add(1)
			es, err := r.baseRead(e.DN, "(objectClass=*)", []string{c.MemberAttribute + ";range=" + strconv.Itoa(start) + "-*"})
			if err != nil {
				return nil, err
			}
			if len(es) != 1 {
				return nil, fmt.Errorf("%d entries came back for one DN", len(es))
			}
			return es[0], nil
		})
		if err != nil {
			return fmt.Errorf("ldap: %w", err)
		}
		r.s.log.Debug("read a large group in ranges", zap.String("group", e.DN), zap.Int("members", len(vals)), zap.Int("requests", n+1))
		whole = vals
	}
	r.members[p.key] = whole
	return nil
}

// resolve turns member DNs into user and subgroup ids. Member DNs under
// base_dn that no search returned are looked up; a group found so is read
// too (not synced), and its members resolved in turn.
func (r *reader) resolve() error {
	memberAttr := r.s.cfg.Groups.MemberAttribute
	for i := 0; i < len(r.order); i++ {
		gk := r.order[i]
		g := r.groups[gk]
		for _, m := range r.members[gk] {
			if strings.EqualFold(memberAttr, "uniqueMember") {
				m = stripUID(m)
			}
			p, err := parseDN(m)
			if err != nil {
				return fmt.Errorf("ldap: group %q lists %s %q, which is not a DN: %v", g.Name, memberAttr, m, err)
			}
			if u := r.users[p.key]; u != nil {
				g.Users = append(g.Users, u.ID)
				continue
			}
			if sub := r.groups[p.key]; sub != nil {
				g.Groups = append(g.Groups, sub.ID)
				continue
			}
			if !p.within(r.s.base) {
				r.outside[gk] = append(r.outside[gk], m)
				continue
			}
			sub, err := r.lookup(gk, m, p)
			if err != nil {
				return err
			}
			if sub != nil {
				g.Groups = append(g.Groups, sub.ID)
			}
		}
		delete(r.members, gk)
	}
	return nil
}

// verdict is what a looked-up member DN turned out to be.
type verdict struct {
	group  *gsync.Group // a group, read (not synced)
	detail string       // reported as unknown_member
	kind   string       // reported as not_user_or_group
}

// lookup reads a member DN that no search returned and says what it is.
// It returns the group when it is one (read, not synced), else nil with
// the member reported for this group.
func (r *reader) lookup(gk dnKey, dn string, p parsedDN) (*gsync.Group, error) {
	v, ok := r.looked[p.key]
	if !ok {
		var err error
		if v, err = r.classify(dn, r.groups[gk]); err != nil {
			return nil, err
		}
		r.looked[p.key] = v
	}
	switch {
	case v.group != nil:
		return v.group, nil
	case v.detail != "":
		r.skip(r.groups[gk], v.detail)
	default:
		if r.others[gk] == nil {
			r.others[gk] = map[string]int{}
		}
		r.others[gk][v.kind]++
	}
	return nil, nil
}

func (r *reader) classify(dn string, from *gsync.Group) (verdict, error) {
	r.s.stats.Lookups.Add(1)
	attrs := append([]string{"objectClass"}, r.groupAttrs()...)
	entries, err := r.baseRead(dn, "(objectClass=*)", attrs)
	var le *goldap.Error
	switch {
	case errors.As(err, &le) && le.ResultCode == goldap.LDAPResultNoSuchObject:
		return verdict{detail: fmt.Sprintf("member %s does not exist (a dangling reference); ignored", dn)}, nil
	case err != nil:
		return verdict{}, &opError{op: fmt.Sprintf("read member %s of group %q", dn, from.Name), err: err}
	case len(entries) != 1:
		return verdict{detail: fmt.Sprintf("member %s cannot be read by the bind account; ignored", dn)}, nil
	}
	e := entries[0]
	classes := lower(e.GetEqualFoldAttributeValues("objectClass"))
	computer := slices.Contains(classes, "computer")
	switch {
	case hasAny(classes, groupClasses) && !computer:
		why := notSyncedNested
		if r.slice {
			// A slice has not read every synced group: ask whether this
			// one is.
			synced, err := r.inGroupFilter(dn)
			if err != nil {
				return verdict{}, err
			}
			if synced {
				why = ""
			}
		}
		g, err := r.addGroup(e, why)
		return verdict{group: g}, err
	case hasAny(classes, personClasses) && !computer:
		return verdict{detail: fmt.Sprintf("member %s is a user outside source.ldap.users.filter or users.base_dn; not read, so it gets no tuples", dn)}, nil
	}
	kind := "entry"
	for _, c := range []string{"computer", "contact", "foreignsecurityprincipal", "msds-managedserviceaccount", "msds-groupmanagedserviceaccount", "device"} {
		if slices.Contains(classes, c) {
			kind = c
		}
	}
	return verdict{kind: kind}, nil
}

func (r *reader) skip(g *gsync.Group, detail string) {
	r.skips = append(r.skips, gsync.Skip{Kind: "member", ID: g.ID, Name: g.Name, Reason: gsync.ReasonUnknownMember, Detail: detail})
}

// inChain asks AD for each group's transitive users.
func (r *reader) inChain() error {
	c := r.s.cfg.Users
	byDN := map[dnKey]string{}
	for k, u := range r.users {
		byDN[k] = u.ID
	}
	for _, gk := range r.order {
		g := r.groups[gk]
		dn := r.groupIDs[g.ID]
		filter := "(&" + c.Filter + "(memberOf:" + inChainRule + ":=" + goldap.EscapeFilter(dn) + "))"
		entries, err := r.search(fmt.Sprintf("transitive members of %q", g.Name), c.BaseDN, filter, goldap.ScopeWholeSubtree, []string{"1.1"})
		if err != nil {
			return err
		}
		for _, e := range entries {
			p, err := parseDN(e.DN)
			if err != nil {
				return fmt.Errorf("ldap: user entry %q: %v", e.DN, err)
			}
			if id, ok := byDN[p.key]; ok {
				g.Users = append(g.Users, id)
			} else {
				r.skip(g, fmt.Sprintf("member %s appeared after the users were read; it is synced from the next run", e.DN))
			}
		}
	}
	return nil
}

func (r *reader) snapshot() *gsync.Snapshot {
	s := &gsync.Snapshot{Skipped: r.skips}
	members := map[string]bool{}
	for _, k := range r.order {
		g := r.groups[k]
		g.Users = dedupe(g.Users)
		g.Groups = dedupe(g.Groups)
		for _, id := range g.Users {
			members[id] = true
		}
		s.Groups = append(s.Groups, *g)
		if out := r.outside[k]; len(out) > 0 {
			list := out
			if len(list) > 5 {
				list = list[:5]
			}
			detail := fmt.Sprintf("%d member(s) outside source.ldap.base_dn %q, not read: %s", len(out), r.s.cfg.BaseDN, strings.Join(list, "; "))
			if len(out) > len(list) {
				detail += fmt.Sprintf("; and %d more", len(out)-len(list))
			}
			s.Skipped = append(s.Skipped, gsync.Skip{Kind: "member", ID: g.ID, Name: g.Name, Reason: gsync.ReasonUnknownMember,
				Detail: detail + " (widen base_dn to read them)"})
		}
		if kinds := r.others[k]; len(kinds) > 0 {
			var parts []string
			for kind, n := range kinds {
				parts = append(parts, fmt.Sprintf("%d %s", n, kind))
			}
			slices.Sort(parts)
			s.Skipped = append(s.Skipped, gsync.Skip{Kind: "member", ID: g.ID, Name: g.Name, Reason: gsync.ReasonNotUserOrGroup,
				Detail: "members that are neither users nor groups: " + strings.Join(parts, ", ")})
		}
	}
	// Only members: a directory's users who are in no group would add
	// nothing but noise to the report.
	for _, u := range r.users {
		if members[u.ID] {
			s.Users = append(s.Users, *u)
		}
	}
	slices.SortFunc(s.Groups, func(a, b gsync.Group) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Users, func(a, b gsync.User) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// stripUID drops the optional "#'0101'B" unique identifier that
// uniqueMember values may carry after the DN.
func stripUID(v string) string {
	if i := strings.LastIndex(v, "#'"); i > 0 && strings.HasSuffix(v, "'B") {
		return v[:i]
	}
	return v
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func lower(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strings.ToLower(v)
	}
	return out
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

package sync

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/groupsync/groupsync/config"
)

// ManagedGroup is a source group that maps to an OpenFGA object.
type ManagedGroup struct {
	Object string `json:"object"`
	ID     string `json:"group_id"`
	Name   string `json:"group_name"`
}

// Desired is what the mapping wants to exist, and what it refused.
type Desired struct {
	Members Memberships    // the membership tuples, sorted
	Groups  []ManagedGroup // sorted by object
	Skipped []Skip         // sorted by kind, reason, id
	// HeldObjects and HeldUsers are OpenFGA ids that the source names
	// ambiguously (two groups or users map to one id). The engine neither
	// adds nor deletes tuples that touch them until the ambiguity is fixed:
	// guessing would merge two groups, and dropping them would delete
	// memberships that are still real.
	HeldObjects map[string]bool
	HeldUsers   map[string]bool
	// UserLabels are readable names (UPN, else mail) of users whose
	// OpenFGA id is not one, for reports.
	UserLabels UserLabels
	// GrouplessUsers are users the source lists in no group at all; with
	// mapping.user.hold_without_groups their tuples are not deleted.
	GrouplessUsers map[string]bool

	SourceGroups int
	SourceUsers  int

	// Grants are the grant rules' tuples, one set per scope (grants.go).
	Grants []GrantSet
}

// Mapper turns snapshots into desired tuples according to config.Mapping.
type Mapper struct {
	cfg      config.Mapping
	grants   []grantRule
	include  []rule
	exclude  []rule
	defaults []rule
}

// NewMapper compiles the mapping's filters.
func NewMapper(cfg config.Mapping) (*Mapper, error) {
	m := &Mapper{cfg: cfg}
	var err error
	if m.include, err = compileRules(cfg.Filters.Include); err != nil {
		return nil, fmt.Errorf("mapping.filters.include: %w", err)
	}
	if m.exclude, err = compileRules(cfg.Filters.Exclude); err != nil {
		return nil, fmt.Errorf("mapping.filters.exclude: %w", err)
	}
	if cfg.Filters.DefaultExcludes {
		ms := make([]config.Match, len(config.DefaultExcludeNames))
		for i, n := range config.DefaultExcludeNames {
			ms[i] = config.Match{Name: n}
		}
		m.defaults, _ = compileRules(ms)
	}
	if m.grants, err = compileGrants(cfg.Grants, cfg.ObjectType, cfg.Relation); err != nil {
		return nil, err
	}
	return m, nil
}

// usersetType is the user type of a nested-group tuple: "group#member".
func (m *Mapper) usersetType() string { return m.cfg.ObjectType + "#" + m.cfg.Relation }

// Scope is everything of the mapping's shape: its object type and relation,
// with plain users or the group's own usersets as users. Usersets are in
// scope in every nesting mode, so switching away from "userset" cleans up.
func (m *Mapper) Scope() Scope {
	return Scope{
		ObjectType: m.cfg.ObjectType,
		Relation:   m.cfg.Relation,
		UserTypes:  []string{m.cfg.User.Type, m.usersetType()},
	}
}

// WriteScope is the part of Scope that this mapping writes; the model must
// accept it.
func (m *Mapper) WriteScope() Scope {
	s := m.Scope()
	if m.cfg.Nesting != "userset" {
		s.UserTypes = s.UserTypes[:1]
	}
	return s
}

// Map computes the desired tuples for a snapshot. It fails only on a
// snapshot that is malformed (empty or repeated ids): that is a source bug,
// and planning from it could delete memberships.
func (m *Mapper) Map(s *Snapshot) (*Desired, error) {
	d := &Desired{
		HeldObjects:  map[string]bool{},
		HeldUsers:    map[string]bool{},
		SourceGroups: len(s.Groups),
		SourceUsers:  len(s.Users),
		Skipped:      slices.Clone(s.Skipped),
	}
	groups := make(map[string]*Group, len(s.Groups))
	for i := range s.Groups {
		g := &s.Groups[i]
		if g.ID == "" {
			return nil, fmt.Errorf("snapshot: group %q has no id", g.Name)
		}
		if groups[g.ID] != nil {
			return nil, fmt.Errorf("snapshot: group id %q appears twice (%q and %q)", g.ID, groups[g.ID].Name, g.Name)
		}
		groups[g.ID] = g
	}
	if err := s.checkUserIndexes(); err != nil {
		return nil, err
	}
	users, err := m.mapUsers(s, d)
	if err != nil {
		return nil, err
	}
	objects := m.mapGroups(s.Groups, users.isUser, d)
	if m.cfg.User.HoldWithoutGroups {
		d.GrouplessUsers = grouplessUsers(s, users)
	}

	// Tuples are built group by group in object order, each group's users
	// sorted and deduplicated, so the result is sorted without a global
	// sort or a set of tuples (a million memberships stay cheap).
	for _, g := range s.Groups {
		if obj, ok := objects[g.ID]; ok {
			d.Groups = append(d.Groups, ManagedGroup{Object: obj, ID: g.ID, Name: g.Name})
		}
	}
	slices.SortFunc(d.Groups, func(a, b ManagedGroup) int { return strings.Compare(a.Object, b.Object) })
	// The membership tuples' users are the user keys, then the managed
	// groups' usersets: a group's members are positions in that table.
	names := users.keys
	var usersets map[string]int32
	if m.cfg.Nesting == "userset" {
		names = slices.Clip(users.keys)
		usersets = make(map[string]int32, len(d.Groups))
		for _, mg := range d.Groups {
			usersets[mg.ID] = int32(len(names))
			names = append(names, mg.Object+"#"+m.cfg.Relation)
		}
	}
	var buf []int32
	b := memberBuilder{relation: m.cfg.Relation, names: names}
	for _, mg := range d.Groups {
		buf = m.members(groups[mg.ID], groups, usersets, users, buf[:0])
		slices.SortFunc(buf, func(x, y int32) int { return strings.Compare(names[x], names[y]) })
		b.addIndexes(mg.Object, slices.Compact(buf))
	}
	d.Members = b.done()
	if len(m.grants) > 0 {
		// A {user} grant goes to every member, nested ones included,
		// whatever the nesting mode of the membership tuples.
		flat := *m
		flat.cfg.Nesting = "flatten"
		gs := make([]grantGroup, len(d.Groups))
		for i, mg := range d.Groups {
			g := groups[mg.ID]
			gs[i] = grantGroup{group: g, object: mg.Object, key: strings.TrimPrefix(mg.Object, m.cfg.ObjectType+":"),
				users: func() []string {
					ix := flat.members(g, groups, nil, users, nil)
					us := make([]string, len(ix))
					for j, k := range ix {
						us[j] = names[k]
					}
					slices.Sort(us)
					return slices.Compact(us)
				}}
		}
		mapGrants(m.grants, gs, d)
	}
	slices.SortFunc(d.Skipped, func(a, b Skip) int {
		return cmpStrings(a.Kind, b.Kind, a.Reason, b.Reason, a.ID, b.ID, a.Detail, b.Detail)
	})
	return d, nil
}

// members appends to out the OpenFGA users of group g under the nesting
// mode, as positions in the mapping's user table (users' keys, then in
// userset mode the managed subgroups' usersets, at usersets[id]).
func (m *Mapper) members(g *Group, groups map[string]*Group, usersets map[string]int32, users *userTable, out []int32) []int32 {
	addUsers := func(from *Group) {
		for _, id := range from.Users {
			if i, ok := users.pos[id]; ok && users.keys[i] != "" {
				out = append(out, i)
			}
		}
		for _, i := range from.UserIndexes {
			if users.keys[i] != "" {
				out = append(out, i)
			}
		}
	}
	addUsers(g)
	if m.cfg.Nesting == "direct" || len(g.Groups) == 0 {
		return out
	}
	// Walk subgroups breadth-first. In userset mode a managed subgroup ends
	// the walk with its userset; an unmanaged one (filtered, bad name) is
	// walked through so its members keep their access through the parent.
	visited := map[string]bool{g.ID: true}
	queue := slices.Clone(g.Groups)
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if visited[id] {
			continue
		}
		visited[id] = true
		sub := groups[id]
		if sub == nil {
			continue // reported once by noteBadMembers
		}
		if us, ok := usersets[id]; ok && m.cfg.Nesting == "userset" {
			out = append(out, us)
			continue
		}
		addUsers(sub)
		queue = append(queue, sub.Groups...)
	}
	return out
}

// userTable is the snapshot's users as the mapping sees them, by their
// position in Snapshot.Users: slices beside it, where maps by id (keys,
// labels) and another by key (the membership builder's) took three times
// the memory at a large tenant.
type userTable struct {
	// pos maps user ids to positions, for groups that list users by id;
	// nil when every group lists them by index.
	pos map[string]int32
	// keys are OpenFGA users ("user:alice") by position; "" for a user
	// that has none (skipped, or held for a shared key).
	keys []string
	// labels are readable names (UPN, else mail) by position, "" where
	// the key is one already.
	labels []string
}

func (t *userTable) isUser(id string) bool { _, ok := t.pos[id]; return ok }

// mapUsers keys every usable user and records the rest as skipped.
func (m *Mapper) mapUsers(s *Snapshot, d *Desired) (*userTable, error) {
	us := s.Users
	t := &userTable{keys: make([]string, len(us))}
	byID := slices.ContainsFunc(s.Groups, func(g Group) bool { return len(g.Users) > 0 })
	// Repeated ids: found among neighbours when the users come sorted by
	// id (a source's usual order), else through the map by id.
	sortedIDs := slices.IsSortedFunc(us, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
	if byID || !sortedIDs {
		t.pos = make(map[string]int32, len(us))
	}
	// firstAt and shared find users that map to one key; only collisions
	// get a list. Keys that are the ids themselves cannot collide: then
	// firstAt is not needed.
	var firstAt map[string]int32
	if m.cfg.User.Key != "id" || m.cfg.User.Lowercase {
		firstAt = make(map[string]int32, len(us))
	}
	shared := map[string][]int32{}
	for i, u := range us {
		if u.ID == "" {
			return nil, fmt.Errorf("snapshot: a user (upn %q) has no id", u.UPN)
		}
		if _, seen := t.pos[u.ID]; seen || (sortedIDs && i > 0 && us[i-1].ID == u.ID) {
			return nil, fmt.Errorf("snapshot: user id %q appears twice", u.ID)
		}
		if t.pos != nil {
			t.pos[u.ID] = int32(i)
		}
		skip := func(reason, detail string) {
			d.Skipped = append(d.Skipped, Skip{Kind: "user", ID: u.ID, Name: u.UPN, Reason: reason, Detail: detail})
		}
		switch {
		case u.Disabled && m.cfg.User.SkipDisabled:
			skip(ReasonDisabled, "account is disabled (mapping.user.skip_disabled)")
			continue
		case u.Guest && m.cfg.User.SkipGuests:
			skip(ReasonGuest, "guest account (mapping.user.skip_guests)")
			continue
		}
		key, attr := m.userKey(u)
		if key == "" {
			skip(ReasonMissingKey, fmt.Sprintf("has no %s, which mapping.user.key uses; give the user one or key users by id", attr))
			continue
		}
		if m.cfg.User.Lowercase {
			key = strings.ToLower(key)
		}
		if why := idProblem(key); why != "" {
			skip(ReasonInvalidUserID, fmt.Sprintf("%s %q cannot be an OpenFGA user id: %s; key users by id instead", attr, key, why))
			continue
		}
		user := m.cfg.User.Type + ":" + key
		if why := userLengthProblem(user); why != "" {
			skip(ReasonInvalidUserID, fmt.Sprintf("%q is %s; key users by id instead", user, why))
			continue
		}
		t.keys[i] = user
		if firstAt != nil {
			if first, taken := firstAt[user]; !taken {
				firstAt[user] = int32(i)
			} else if shared[user] == nil {
				shared[user] = []int32{first, int32(i)}
			} else {
				shared[user] = append(shared[user], int32(i))
			}
		}
		// A reviewer reads "alice@contoso.example" where the tuple says
		// "user:1dd0d2c2-...": remember a readable name for opaque keys.
		if label := cmp.Or(u.UPN, u.Mail); label != "" && label != key {
			if t.labels == nil {
				t.labels = make([]string, len(us))
			}
			t.labels[i] = label
		}
	}
	for user, at := range shared {
		d.HeldUsers[user] = true
		ids := make([]string, len(at))
		for j, i := range at {
			ids[j] = us[i].ID
			t.keys[i] = ""
		}
		for _, id := range ids {
			d.Skipped = append(d.Skipped, Skip{Kind: "user", ID: id, Reason: ReasonDuplicateUser,
				Detail: fmt.Sprintf("users %s all map to %s; existing tuples of %s are kept until the key is unique (choose a unique mapping.user.key)", strings.Join(sorted(ids), ", "), user, user)})
		}
	}
	d.UserLabels = newUserLabels(t.keys, t.labels)
	return t, nil
}

func (m *Mapper) userKey(u User) (key, attr string) {
	switch k := m.cfg.User.Key; k {
	case "id":
		return u.ID, "id"
	case "upn":
		return u.UPN, "upn"
	case "username":
		return u.UPN, "username"
	case "mail":
		return u.Mail, "mail"
	default:
		name := strings.TrimPrefix(k, "attribute:")
		return u.Attributes[name], "attribute " + name
	}
}

// mapGroups filters groups and gives each managed one its OpenFGA object.
func (m *Mapper) mapGroups(gs []Group, isUser func(id string) bool, d *Desired) map[string]string {
	objects := make(map[string]string, len(gs))
	byObject := map[string][]*Group{}
	ids := make(map[string]bool, len(gs))
	for i := range gs {
		ids[gs[i].ID] = true
	}
	for i := range gs {
		g := &gs[i]
		skip := func(reason, detail string) {
			d.Skipped = append(d.Skipped, Skip{Kind: "group", ID: g.ID, Name: g.Name, Reason: reason, Detail: detail})
		}
		noteBadMembers(g, ids, isUser, d)
		if g.NotSynced != "" {
			skip(ReasonSourceFiltered, g.NotSynced)
			continue
		}
		if len(m.include) > 0 {
			if _, ok := firstMatch(m.include, *g); !ok {
				skip(ReasonNotIncluded, "matches no mapping.filters.include rule")
				continue
			}
		}
		if r, ok := firstMatch(m.exclude, *g); ok {
			skip(ReasonExcluded, "matches mapping.filters.exclude "+r.desc)
			continue
		}
		if _, ok := firstMatch(m.defaults, *g); ok {
			skip(ReasonDefaultExcluded, "built-in directory group (set mapping.filters.default_excludes: false to sync it)")
			continue
		}
		key, why := m.groupKey(g)
		if why != "" {
			skip(ReasonInvalidObjectID, why)
			continue
		}
		obj := m.cfg.ObjectType + ":" + key
		byObject[obj] = append(byObject[obj], g)
		objects[g.ID] = obj
	}
	for obj, same := range byObject {
		if len(same) < 2 {
			continue
		}
		d.HeldObjects[obj] = true
		names := make([]string, len(same))
		for i, g := range same {
			names[i] = fmt.Sprintf("%q (id %s)", g.Name, g.ID)
		}
		slices.Sort(names)
		for _, g := range same {
			delete(objects, g.ID)
			d.Skipped = append(d.Skipped, Skip{Kind: "group", ID: g.ID, Name: g.Name, Reason: ReasonDuplicateObject,
				Detail: fmt.Sprintf("groups %s all map to %s; neither is synced and its existing tuples are kept until the names differ (rename one, or set mapping.group.key: id)", strings.Join(names, ", "), obj)})
		}
	}
	return objects
}

// groupKey returns the group's OpenFGA object id, or why it cannot have one.
func (m *Mapper) groupKey(g *Group) (key, why string) {
	if m.cfg.Group.Key == "id" {
		key = g.ID
	} else {
		key = g.Name
		if r := m.cfg.Group.ReplaceWhitespace; r != "" {
			key = strings.Join(strings.Fields(key), r)
		}
	}
	if m.cfg.Group.Lowercase {
		key = strings.ToLower(key)
	}
	if problem := idProblem(key); problem != "" {
		hint := "rename the group, exclude it with mapping.filters.exclude, or set mapping.group.key: id"
		switch {
		case m.cfg.Group.Key == "id":
			hint = "the source's group id is unusable; exclude the group with mapping.filters.exclude"
		case strings.IndexFunc(key, unicode.IsSpace) >= 0:
			hint = `set mapping.group.replace_whitespace (e.g. "-"), or mapping.group.key: id`
		}
		return "", fmt.Sprintf("%s %q cannot be an OpenFGA object id: %s; %s", m.cfg.Group.Key, key, problem, hint)
	}
	if why := objectLengthProblem(m.cfg.ObjectType + ":" + key); why != "" {
		return "", fmt.Sprintf("object %s:%s is %s; set mapping.group.key: id", m.cfg.ObjectType, key, why)
	}
	return key, ""
}

// noteBadMembers reports members that the snapshot does not contain and
// direct self-membership, once per group.
func noteBadMembers(g *Group, groupIDs map[string]bool, isUser func(id string) bool, d *Desired) {
	for _, id := range g.Users {
		if !isUser(id) {
			d.Skipped = append(d.Skipped, Skip{Kind: "member", ID: g.ID, Name: g.Name, Reason: ReasonUnknownMember,
				Detail: fmt.Sprintf("user %q is not in the snapshot; ignored", id)})
		}
	}
	for _, id := range g.Groups {
		switch {
		case id == g.ID:
			d.Skipped = append(d.Skipped, Skip{Kind: "member", ID: g.ID, Name: g.Name, Reason: ReasonSelfMember,
				Detail: "group lists itself as a subgroup; ignored"})
		case !groupIDs[id]:
			d.Skipped = append(d.Skipped, Skip{Kind: "member", ID: g.ID, Name: g.Name, Reason: ReasonUnknownMember,
				Detail: fmt.Sprintf("subgroup %q is not in the snapshot; ignored", id)})
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// cmpStrings compares pairs (a1,b1), (a2,b2)... in order.
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}

// ModelDSL is the smallest OpenFGA model that accepts every tuple this
// mapping writes, for users to start from or merge into theirs.
func (m *Mapper) ModelDSL() string {
	return fmt.Sprintf(`model
  schema 1.1

type %[1]s

type %[2]s
  relations
    define %[3]s: [%[1]s, %[2]s#%[3]s]
`, m.cfg.User.Type, m.cfg.ObjectType, m.cfg.Relation)
}

// dropObjects removes groups (and their desired tuples) from the desired
// state, recording each as skipped with reason and its detail.
func (d *Desired) dropObjects(details map[string]string, reason string) {
	if len(details) == 0 {
		return
	}
	d.Groups = slices.DeleteFunc(d.Groups, func(g ManagedGroup) bool {
		detail, drop := details[g.Object]
		if drop {
			d.Skipped = append(d.Skipped, Skip{Kind: "group", ID: g.ID, Name: g.Name, Reason: reason, Detail: detail})
		}
		return drop
	})
	d.Members.Filter(func(t Tuple) bool { _, drop := details[t.Object]; return !drop })
	slices.SortFunc(d.Skipped, func(a, b Skip) int {
		return cmpStrings(a.Kind, b.Kind, a.Reason, b.Reason, a.ID, b.ID, a.Detail, b.Detail)
	})
}

// grouplessUsers returns the OpenFGA ids of users that no group of the
// snapshot lists as a member, filtered groups included.
func grouplessUsers(s *Snapshot, users *userTable) map[string]bool {
	listed := make([]bool, len(s.Users))
	for i := range s.Groups {
		g := &s.Groups[i]
		for _, id := range g.Users {
			if p, ok := users.pos[id]; ok {
				listed[p] = true
			}
		}
		for _, p := range g.UserIndexes {
			listed[p] = true
		}
	}
	out := map[string]bool{}
	for i, key := range users.keys {
		if key != "" && !listed[i] {
			out[key] = true
		}
	}
	return out
}

package graphtest

// Delta queries: GET /groups/delta and /users/delta, served from a change
// log that Mutate (and RemoveGroup, RemoveUser) appends to.
//
// As on Graph:
//   - The first request (no token, or an empty $deltatoken) starts a full
//     round: every object as it is now, groups with all their members in
//     members@delta. $deltatoken=latest answers no objects and a deltaLink
//     that starts from now.
//   - A round is paged by @odata.nextLink ($skiptoken) until a page carries
//     @odata.deltaLink ($deltatoken). Links point at this server; the
//     tokens carry $select and $filter, so later requests need neither.
//   - A deltaLink round returns what changed since its token: created and
//     changed objects with every selected property (properties never set
//     are left out), groups whose members changed with members@delta
//     holding only the members added and, with "@removed":{"reason":
//     "deleted"}, removed; deleted objects as {"id", "@removed":{"reason"}}
//     ("changed" for a deleted Microsoft 365 group or user, which can be
//     restored; "deleted" for a security group). Changes are net: a member
//     added and removed again between two rounds does not show.
//   - A group's members@delta is spread over as many pages as it needs (the
//     group object repeats on each); DeltaOptions adds empty pages and
//     replays (the previous round's changes again), which Graph warns of.
//   - Tokens expire (DeltaOptions.TokenLifetime, 7 days; ExpireDeltaTokens):
//     400 syncStateNotFound. ResetDelta makes every earlier token answer
//     410 Gone with a Location header that starts a new full round.
//   - $filter takes only "id eq '...'" terms joined by "or", at most 50;
//     $top, $expand, $orderby, $search, $count and $skip are refused.
//
// A round is computed from the log between the token's version and the
// version when the round started, with objects as they are when each page
// is served. Tenant changes made while a round is being paged show up in
// the next round (cursors resume by id, so nothing is skipped).

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DeltaOptions shape delta answers.
type DeltaOptions struct {
	// ObjectsPerPage is the most groups or users on one page (100 if zero);
	// MembersPerPage the most members@delta entries on one page, over all
	// its groups (1000 if zero). Graph documents neither: they vary "with
	// the resource type and the type of changes".
	ObjectsPerPage int
	MembersPerPage int
	// EmptyPages answers an empty page (value [] and a nextLink) before
	// every page that has objects, which Graph may do.
	EmptyPages bool
	// Replay makes each deltaLink round also return the changes of the
	// round before it, which Graph warns clients to expect.
	Replay bool
	// TokenLifetime is how long a delta or skip token is honoured (7 days
	// if zero, Graph's limit for directory objects); older tokens answer
	// 400 syncStateNotFound.
	TokenLifetime time.Duration
}

// WithDelta sets how delta queries page, replay and expire.
func WithDelta(o DeltaOptions) Option { return func(c *config) { c.delta = o } }

const (
	defaultDeltaObjects  = 100
	defaultDeltaMembers  = 1000
	defaultTokenLifetime = 7 * 24 * time.Hour
	maxDeltaFilterIDs    = 50
)

// ---- the change log ----

// groupBefore is a group as it was before a change: whether it existed and
// its properties (Members unset).
type groupBefore struct {
	id      string
	existed bool
	g       Group
}

// pairChange is one membership that a change added or removed.
type pairChange struct {
	group, member string
	kind          kind // the member's kind, for @odata.type when it is gone
	was           bool // whether it was a member before the change
}

type userBefore struct {
	id      string
	existed bool
	u       User
}

// changeSet is what one Mutate changed.
type changeSet struct {
	groups []groupBefore
	pairs  []pairChange
	users  []userBefore
}

func (c *changeSet) empty() bool { return len(c.groups)+len(c.pairs)+len(c.users) == 0 }

// diffIndexes records what changed from old to new, for delta rounds.
func diffIndexes(old, cur *index) changeSet {
	var cs changeSet
	kindIn := func(id string) kind {
		if o, ok := cur.byID[id]; ok {
			return cur.kind(o)
		}
		if o, ok := old.byID[id]; ok {
			return old.kind(o)
		}
		return kindUser
	}
	props := func(g *Group) Group { p := *g; p.Members = nil; return p }
	for i := range old.t.Groups {
		og := &old.t.Groups[i]
		o, ok := cur.lookup(kindGroup, og.ID)
		if !ok {
			cs.groups = append(cs.groups, groupBefore{id: og.ID, existed: true, g: props(og)})
			for _, m := range og.Members {
				cs.pairs = append(cs.pairs, pairChange{group: og.ID, member: m, kind: kindIn(m), was: true})
			}
			continue
		}
		ng := cur.group(o)
		if !sameGroupProps(og, ng) {
			cs.groups = append(cs.groups, groupBefore{id: og.ID, existed: true, g: props(og)})
		}
		if slices.Equal(og.Members, ng.Members) {
			continue
		}
		was := make(map[string]bool, len(og.Members))
		for _, m := range og.Members {
			was[m] = true
		}
		now := make(map[string]bool, len(ng.Members))
		for _, m := range ng.Members {
			now[m] = true
			if !was[m] {
				cs.pairs = append(cs.pairs, pairChange{group: og.ID, member: m, kind: kindIn(m), was: false})
			}
		}
		for _, m := range og.Members {
			if !now[m] {
				cs.pairs = append(cs.pairs, pairChange{group: og.ID, member: m, kind: kindIn(m), was: true})
			}
		}
	}
	for i := range cur.t.Groups {
		ng := &cur.t.Groups[i]
		if _, ok := old.lookup(kindGroup, ng.ID); ok {
			continue
		}
		cs.groups = append(cs.groups, groupBefore{id: ng.ID, existed: false})
		for _, m := range ng.Members {
			cs.pairs = append(cs.pairs, pairChange{group: ng.ID, member: m, kind: kindIn(m), was: false})
		}
	}
	for i := range old.t.Users {
		ou := &old.t.Users[i]
		o, ok := cur.lookup(kindUser, ou.ID)
		if !ok || *cur.user(o) != *ou {
			cs.users = append(cs.users, userBefore{id: ou.ID, existed: true, u: *ou})
		}
	}
	for i := range cur.t.Users {
		if _, ok := old.lookup(kindUser, cur.t.Users[i].ID); !ok {
			cs.users = append(cs.users, userBefore{id: cur.t.Users[i].ID})
		}
	}
	return cs
}

func sameGroupProps(a, b *Group) bool {
	return a.DisplayName == b.DisplayName && slices.Equal(a.GroupTypes, b.GroupTypes) && a.SecurityEnabled == b.SecurityEnabled &&
		a.MailEnabled == b.MailEnabled && a.IsAssignableToRole == b.IsAssignableToRole
}

// deltaLog is the server's change log and token state.
type deltaLog struct {
	mu      sync.Mutex
	changes []changeSet // changes[v] turns version v into v+1
	epoch   int         // ResetDelta increments it
	expire  int64       // tokens issued before this (unix nanoseconds) are expired

	cacheMu sync.Mutex
	cache   map[string]*round // the last round computed per resource; pages of one round share it
}

// commit stores a new index and the changes that lead to it. Callers hold
// s.mutateMu.
func (s *Server) commit(ix *index) {
	old := s.ix.Load()
	cs := diffIndexes(old, ix)
	s.delta.mu.Lock()
	s.delta.changes = append(s.delta.changes, cs)
	s.ix.Store(ix)
	s.delta.mu.Unlock()
}

// deltaView is a consistent index and log prefix.
func (s *Server) deltaView() (*index, []changeSet, int, int64) {
	s.delta.mu.Lock()
	defer s.delta.mu.Unlock()
	n := len(s.delta.changes)
	return s.ix.Load(), s.delta.changes[:n:n], s.delta.epoch, s.delta.expire
}

// ExpireDeltaTokens makes every delta and skip token issued so far answer
// 400 syncStateNotFound, as Graph does once a token is older than 7 days.
func (s *Server) ExpireDeltaTokens() {
	s.delta.mu.Lock()
	defer s.delta.mu.Unlock()
	s.delta.expire = s.clock().UnixNano() + 1
}

// ResetDelta makes every delta and skip token issued so far answer 410 Gone
// with a Location header that starts a new full round, as Graph does after
// internal maintenance or a tenant migration.
func (s *Server) ResetDelta() {
	s.delta.mu.Lock()
	defer s.delta.mu.Unlock()
	s.delta.epoch++
}

// SetClock replaces time.Now for token lifetimes and throttling; nil
// restores time.Now.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.setClock(now)
}

// RemoveUser deletes a user, and its membership in groups, as deleting it in
// Entra ID does. It reports whether the user existed.
func (s *Server) RemoveUser(id string) bool {
	found := false
	s.Mutate(func(t *Tenant) {
		t.Users = slices.DeleteFunc(t.Users, func(u User) bool {
			found = found || u.ID == id
			return u.ID == id
		})
		for i := range t.Groups {
			t.Groups[i].Members = slices.DeleteFunc(t.Groups[i].Members, func(m string) bool { return m == id })
		}
	})
	return found
}

// ---- tokens ----

// deltaToken is the state a delta or skip token carries.
type deltaToken struct {
	Kind   string   `json:"k"`           // "groups" or "users"
	From   int      `json:"f"`           // the version the round starts from; -1 for a full round
	To     int      `json:"t"`           // the version the round ends at (a deltaLink: the version it is synced to)
	Prev   int      `json:"r,omitempty"` // deltaLink: the From of the round that made it (for replays)
	Abs    bool     `json:"x,omitempty"` // a replaying round: every object touched since From, as it is now
	After  string   `json:"a,omitempty"` // skip token: the id of the object the page starts at
	Member string   `json:"m,omitempty"` // skip token: the last member of that object already sent
	Empty  bool     `json:"z,omitempty"` // skip token: the empty page for this position was sent
	Select []string `json:"s,omitempty"` // lower-cased $select; nil without one
	HasSel bool     `json:"h,omitempty"`
	IDs    []string `json:"i,omitempty"` // $filter ids
	Epoch  int      `json:"e"`
	Issued int64    `json:"at"` // unix nanoseconds
}

const tokenPrefix = "gtd1."

func (t deltaToken) encode() string {
	b, _ := json.Marshal(t)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeDeltaToken(s, kind string) (deltaToken, bool) {
	var t deltaToken
	raw, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return t, false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Kind != kind {
		return t, false
	}
	return t, true
}

// ---- rounds ----

// memberDelta is one entry of members@delta.
type memberDelta struct {
	id      string
	kind    kind
	removed bool
}

// deltaEntry is one object of a round.
type deltaEntry struct {
	id      string
	obj     int32  // the object in the round's index; -1 when removed
	removed string // "@removed" reason, or ""
	// members are the members@delta entries, sorted by id; for a full
	// round they are read from the index when the page is written.
	members []memberDelta
	all     bool // every current member, as additions (a full round, or a created group)
}

// round is the sorted list of entries of one round over one index.
type round struct {
	kind            string
	from, to        int
	abs             bool
	ix              *index
	ids             string // the $filter ids, joined
	entries         []deltaEntry
	sortedMemberBuf map[int32][]memberDelta
	mu              sync.Mutex
}

// roundFor returns the entries of a round, computing them once per index.
func (s *Server) roundFor(kind string, from, to int, abs bool, ix *index, changes []changeSet, ids []string) *round {
	key := strings.Join(ids, ",")
	s.delta.cacheMu.Lock()
	defer s.delta.cacheMu.Unlock()
	if c := s.delta.cache[kind]; c != nil && c.from == from && c.to == to && c.abs == abs && c.ix == ix && c.ids == key {
		return c
	}
	rd := &round{kind: kind, from: from, to: to, abs: abs, ix: ix, ids: key}
	var only map[string]bool
	if len(ids) > 0 {
		only = map[string]bool{}
		for _, id := range ids {
			only[id] = true
		}
	}
	keep := func(id string) bool { return only == nil || only[id] }
	if kind == "groups" {
		rd.entries = groupEntries(ix, changes, from, to, abs, keep)
	} else {
		rd.entries = userEntries(ix, changes, from, to, abs, keep)
	}
	if s.delta.cache == nil {
		s.delta.cache = map[string]*round{}
	}
	s.delta.cache[kind] = rd
	return rd
}

// groupEntries lists a round's groups. A full round (from < 0) has every
// group with all its members. Otherwise the round has the net changes since
// from: or, when abs is set (a replaying round, whose client already has
// some of these changes), every group and membership touched since from,
// as it is now.
func groupEntries(ix *index, changes []changeSet, from, to int, abs bool, keep func(string) bool) []deltaEntry {
	var out []deltaEntry
	if from < 0 {
		for _, o := range ix.groups {
			if id := ix.id(o); keep(id) {
				out = append(out, deltaEntry{id: id, obj: o, all: true})
			}
		}
		slices.SortFunc(out, func(a, b deltaEntry) int { return cmp.Compare(a.id, b.id) })
		return out
	}
	first := map[string]groupBefore{}
	type pairKey struct{ g, m string }
	firstPair := map[pairKey]pairChange{}
	touched := map[string]bool{}
	for v := from; v < to && v < len(changes); v++ {
		for _, g := range changes[v].groups {
			if _, ok := first[g.id]; !ok {
				first[g.id] = g
			}
			touched[g.id] = true
		}
		for _, p := range changes[v].pairs {
			k := pairKey{p.group, p.member}
			if _, ok := firstPair[k]; !ok {
				firstPair[k] = p
			}
			touched[p.group] = true
		}
	}
	pairsOf := map[string][]pairChange{}
	for _, p := range firstPair {
		pairsOf[p.group] = append(pairsOf[p.group], p)
	}
	for id := range touched {
		if !keep(id) {
			continue
		}
		before, propsTouched := first[id]
		existed := !propsTouched || before.existed
		o, exists := ix.lookup(kindGroup, id)
		switch {
		case !exists && (existed || abs):
			reason := "deleted" // a security group cannot be restored
			if before.g.hasType("Unified") {
				reason = "changed" // a Microsoft 365 group goes to deleted items
			}
			out = append(out, deltaEntry{id: id, obj: -1, removed: reason})
		case !exists:
			// created and deleted since the token: nothing to tell
		case !existed && !abs:
			out = append(out, deltaEntry{id: id, obj: o, all: true})
		default:
			var set map[int32]bool
			var ms []memberDelta
			for _, p := range pairsOf[id] {
				if set == nil {
					set = make(map[int32]bool, len(ix.directMembers(o)))
					for _, m := range ix.directMembers(o) {
						set[m] = true
					}
				}
				mo, known := ix.byID[p.member]
				now := known && set[mo]
				if now == p.was && !abs {
					continue
				}
				k := p.kind
				if known {
					k = ix.kind(mo)
				}
				ms = append(ms, memberDelta{id: p.member, kind: k, removed: !now})
			}
			changed := propsTouched && (abs || !before.existed || !sameGroupProps(&before.g, ix.group(o)))
			if len(ms) == 0 && !changed {
				continue
			}
			slices.SortFunc(ms, func(a, b memberDelta) int { return cmp.Compare(a.id, b.id) })
			out = append(out, deltaEntry{id: id, obj: o, members: ms})
		}
	}
	slices.SortFunc(out, func(a, b deltaEntry) int { return cmp.Compare(a.id, b.id) })
	return out
}

func userEntries(ix *index, changes []changeSet, from, to int, abs bool, keep func(string) bool) []deltaEntry {
	var out []deltaEntry
	if from < 0 {
		for _, o := range ix.users {
			if id := ix.id(o); keep(id) {
				out = append(out, deltaEntry{id: id, obj: o})
			}
		}
	} else {
		first := map[string]userBefore{}
		for v := from; v < to && v < len(changes); v++ {
			for _, u := range changes[v].users {
				if _, ok := first[u.id]; !ok {
					first[u.id] = u
				}
			}
		}
		for id, before := range first {
			if !keep(id) {
				continue
			}
			o, exists := ix.lookup(kindUser, id)
			switch {
			case !exists && (before.existed || abs):
				out = append(out, deltaEntry{id: id, obj: -1, removed: "changed"}) // deleted users can be restored
			case !exists:
			case abs || !before.existed || *ix.user(o) != before.u:
				out = append(out, deltaEntry{id: id, obj: o})
			}
		}
	}
	slices.SortFunc(out, func(a, b deltaEntry) int { return cmp.Compare(a.id, b.id) })
	return out
}

// membersOf returns an entry's members@delta, sorted by id.
func (rd *round) membersOf(e *deltaEntry) []memberDelta {
	if !e.all {
		return e.members
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if ms, ok := rd.sortedMemberBuf[e.obj]; ok {
		return ms
	}
	direct := rd.ix.directMembers(e.obj)
	ms := make([]memberDelta, len(direct))
	for i, m := range direct {
		ms[i] = memberDelta{id: rd.ix.id(m), kind: rd.ix.kind(m)}
	}
	slices.SortFunc(ms, func(a, b memberDelta) int { return cmp.Compare(a.id, b.id) })
	if rd.sortedMemberBuf == nil {
		rd.sortedMemberBuf = map[int32][]memberDelta{}
	}
	rd.sortedMemberBuf[e.obj] = ms
	return ms
}

// ---- serving ----

var deltaFilterTerm = regexp.MustCompile(`(?i)^\s*id\s+eq\s+'([^']*)'\s*$`)

// parseDeltaFilter reads "id eq 'a' or id eq 'b'", the only $filter delta
// queries take.
func parseDeltaFilter(f string) ([]string, *graphError) {
	var ids []string
	for _, term := range regexp.MustCompile(`(?i)\s+or\s+`).Split(f, -1) {
		m := deltaFilterTerm.FindStringSubmatch(term)
		if m == nil {
			return nil, unsupported("Unsupported query: delta queries take only $filter=id eq '{id}' terms joined by 'or'.")
		}
		ids = append(ids, m[1])
	}
	if len(ids) > maxDeltaFilterIDs {
		return nil, unsupported("Too many ids in the $filter of a delta query: %d (at most %d).", len(ids), maxDeltaFilterIDs)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// serveDelta answers GET /groups/delta and /users/delta (authenticated and
// authorized by serveGraph).
func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request, rt route) {
	kindName, k := "groups", kindGroup
	if rt.ep == EndpointUsersDelta {
		kindName, k = "users", kindUser
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, newError(http.StatusBadRequest, "BadRequest", "The query specified in the URI is not valid. %v", err))
		return
	}
	get := func(name string) (string, bool) {
		for key, v := range values {
			if strings.EqualFold(key, name) && len(v) > 0 {
				return v[0], true
			}
		}
		return "", false
	}
	for _, name := range []string{"$top", "$expand", "$orderby", "$search", "$count", "$skip"} {
		if _, ok := get(name); ok {
			s.writeError(w, r, unsupported("The query parameter %s is not supported with delta queries.", name))
			return
		}
	}
	ix, changes, epoch, expired := s.deltaView()
	version := len(changes)
	now := s.clock()

	// The query options of a new round: $select (members included), $filter.
	var sel []string
	sv, hasSel := get("$select")
	if hasSel {
		q := &query{}
		var names []string
		for _, n := range strings.Split(sv, ",") {
			if n = strings.TrimSpace(n); n != "" && !(k == kindGroup && strings.EqualFold(n, "members")) {
				names = append(names, n)
			}
		}
		if gerr := q.parseSelect(strings.Join(names, ","), []kind{k}); gerr != nil {
			s.writeError(w, r, gerr)
			return
		}
		sel = q.selected
		if k == kindGroup && slices.ContainsFunc(strings.Split(sv, ","), func(n string) bool { return strings.EqualFold(strings.TrimSpace(n), "members") }) {
			sel = append(sel, "members")
		}
	}
	var ids []string
	if f, ok := get("$filter"); ok {
		var gerr *graphError
		if ids, gerr = parseDeltaFilter(f); gerr != nil {
			s.writeError(w, r, gerr)
			return
		}
	}

	var tok deltaToken
	st, hasSkip := get("$skiptoken")
	dt, hasDelta := get("$deltatoken")
	switch {
	case hasSkip:
		if hasSel {
			s.writeError(w, r, unsupported("$select cannot be combined with a $skiptoken; it is carried by the token."))
			return
		}
		t, ok := decodeDeltaToken(st, kindName)
		if !ok {
			s.writeError(w, r, newError(http.StatusBadRequest, "syncStateInvalid", "The skip token is not valid for this resource."))
			return
		}
		tok = t
	case hasDelta && strings.EqualFold(dt, "latest"):
		link := deltaToken{Kind: kindName, From: version, To: version, Prev: version, Select: sel, HasSel: hasSel, IDs: ids, Epoch: epoch, Issued: now.UnixNano()}
		if !s.chargeDelta(w, r, k, hasSel) {
			return
		}
		s.writeDeltaPage(w, kindName, nil, nil, deltaToken{}, link, true)
		return
	case hasDelta && dt != "":
		t, ok := decodeDeltaToken(dt, kindName)
		if !ok {
			s.writeError(w, r, newError(http.StatusBadRequest, "syncStateInvalid", "The delta token is not valid for this resource."))
			return
		}
		if ok := s.checkToken(w, r, kindName, t, epoch, expired, now); !ok {
			return
		}
		tok = deltaToken{Kind: kindName, From: t.To, To: version, Select: t.Select, HasSel: t.HasSel, IDs: t.IDs, Epoch: t.Epoch, Issued: now.UnixNano()}
		if s.cfg.delta.Replay && t.Prev < t.To {
			tok.From, tok.Abs = t.Prev, true
		}
		if hasSel { // Graph lets a deltaLink change what is tracked
			tok.Select, tok.HasSel = sel, true
		}
	default: // a new full round
		tok = deltaToken{Kind: kindName, From: -1, To: version, Select: sel, HasSel: hasSel, IDs: ids, Epoch: epoch, Issued: now.UnixNano()}
	}
	if hasSkip {
		if ok := s.checkToken(w, r, kindName, tok, epoch, expired, now); !ok {
			return
		}
	}
	if !s.chargeDelta(w, r, k, tok.HasSel) {
		return
	}

	rd := s.roundFor(kindName, tok.From, tok.To, tok.Abs, ix, changes, tok.IDs)
	start, _ := slices.BinarySearchFunc(rd.entries, tok.After, func(e deltaEntry, id string) int { return cmp.Compare(e.id, id) })
	if s.cfg.delta.EmptyPages && !tok.Empty && start < len(rd.entries) {
		next := tok
		next.Empty = true
		s.writeDeltaPage(w, kindName, nil, nil, deltaToken{}, next, false)
		return
	}
	objects := cmp.Or(s.cfg.delta.ObjectsPerPage, defaultDeltaObjects)
	budget := cmp.Or(s.cfg.delta.MembersPerPage, defaultDeltaMembers)
	withMembers := k == kindGroup && (!tok.HasSel || slices.Contains(tok.Select, "members"))

	var page []pageObject
	next := tok
	next.Empty = false
	done := true
	for i := start; i < len(rd.entries); i++ {
		e := &rd.entries[i]
		if len(page) == objects {
			next.After, next.Member, done = e.id, "", false
			break
		}
		po := pageObject{entry: e}
		if withMembers && e.removed == "" {
			ms := rd.membersOf(e)
			from := 0
			if e.id == tok.After && tok.Member != "" {
				from, _ = slices.BinarySearchFunc(ms, tok.Member, func(m memberDelta, id string) int { return cmp.Compare(m.id, id) })
				if from < len(ms) && ms[from].id == tok.Member {
					from++
				}
			}
			left := ms[from:]
			if len(left) > 0 && budget == 0 {
				next.After, next.Member, done = e.id, "", false
				if from > 0 {
					next.Member = ms[from-1].id
				}
				break
			}
			take := min(len(left), budget)
			po.members = left[:take]
			budget -= take
			if take < len(left) {
				page = append(page, po)
				next.After, next.Member, done = e.id, left[take-1].id, false
				break
			}
			if len(ms) > 0 && len(left) == 0 && from > 0 {
				continue // every member of this group went on earlier pages
			}
		}
		page = append(page, po)
	}
	if done {
		link := deltaToken{Kind: kindName, From: tok.To, To: tok.To, Prev: max(tok.From, 0), Select: tok.Select, HasSel: tok.HasSel,
			IDs: tok.IDs, Epoch: tok.Epoch, Issued: now.UnixNano()}
		if tok.From < 0 {
			link.Prev = tok.To
		}
		s.writeDeltaPage(w, kindName, rd, page, tok, link, true)
		return
	}
	s.writeDeltaPage(w, kindName, rd, page, tok, next, false)
}

// pageObject is an entry on a page, with the members it carries there.
type pageObject struct {
	entry   *deltaEntry
	members []memberDelta
}

// checkToken answers 410 for a token from before ResetDelta and 400
// syncStateNotFound for an expired one; it reports whether the token is good.
func (s *Server) checkToken(w http.ResponseWriter, r *http.Request, kindName string, t deltaToken, epoch int, expired int64, now time.Time) bool {
	if t.Epoch < epoch {
		loc := s.URL + "/v1.0/" + kindName + "/delta"
		if len(t.Select) > 0 {
			loc += "?$select=" + url.QueryEscape(strings.Join(t.Select, ","))
		}
		w.Header().Set("Location", loc)
		s.writeError(w, r, newError(http.StatusGone, "resyncRequired",
			"The delta token is no longer valid after maintenance of the directory; restart with a full synchronization at the Location."))
		return false
	}
	lifetime := cmp.Or(s.cfg.delta.TokenLifetime, defaultTokenLifetime)
	if t.Issued < expired || now.Sub(time.Unix(0, t.Issued)) > lifetime {
		s.writeError(w, r, newError(http.StatusBadRequest, "syncStateNotFound",
			"The sync state generation is not found. The delta token is expired and data must be synchronized again."))
		return false
	}
	return true
}

func (s *Server) chargeDelta(w http.ResponseWriter, r *http.Request, k kind, selected bool) bool {
	ep := EndpointGroupsDelta
	if k == kindUser {
		ep = EndpointUsersDelta
	}
	cost := resourceUnits(ep, selected)
	if err := s.charge(cost); err != nil {
		s.writeError(w, r, err)
		return false
	}
	w.Header().Set("x-ms-resource-unit", strconv.Itoa(cost))
	return true
}

// writeDeltaPage writes one page: the objects with their selected
// properties and members@delta, and the nextLink or deltaLink.
func (s *Server) writeDeltaPage(w http.ResponseWriter, kindName string, rd *round, page []pageObject, tok, link deltaToken, final bool) {
	b := []byte(`{"@odata.context":`)
	b = appendString(b, s.URL+"/v1.0/$metadata#"+kindName)
	if final {
		b = append(b, `,"@odata.deltaLink":`...)
		b = appendString(b, s.URL+"/v1.0/"+kindName+"/delta?$deltatoken="+link.encode())
	} else {
		b = append(b, `,"@odata.nextLink":`...)
		b = appendString(b, s.URL+"/v1.0/"+kindName+"/delta?$skiptoken="+link.encode())
	}
	b = append(b, `,"value":[`...)
	k := kindGroup
	if kindName == "users" {
		k = kindUser
	}
	props := deltaProps(k, tok)
	withMembers := k == kindGroup && (!tok.HasSel || slices.Contains(tok.Select, "members"))
	for i, po := range page {
		if i > 0 {
			b = append(b, ',')
		}
		e := po.entry
		b = append(b, '{')
		if e.removed != "" {
			b = appendKey(b, true, "id")
			b = appendString(b, e.id)
			b = append(b, `,"@removed":{"reason":`...)
			b = appendString(b, e.removed)
			b = append(b, "}}"...)
			continue
		}
		first := true
		for _, p := range props {
			if p.str == nil && p.boolean == nil && p.strs == nil {
				continue // a property the fake does not model is never set
			}
			if p.str != nil {
				if _, set := p.str(rd.ix, e.obj); !set {
					continue // never set: left out, as Graph does in delta answers
				}
			}
			b = appendProp(b, rd.ix, e.obj, p, first)
			first = false
		}
		if withMembers && len(po.members) > 0 {
			b = appendKey(b, first, "members@delta")
			b = append(b, '[')
			for j, m := range po.members {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"@odata.type":`...)
				b = appendString(b, odataTypes[m.kind])
				b = append(b, `,"id":`...)
				b = appendString(b, m.id)
				if m.removed {
					b = append(b, `,"@removed":{"reason":"deleted"}`...)
				}
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	s.writeJSON(w, http.StatusOK, b)
}

// deltaProps are the properties a round writes: the selected ones (id
// always), or the type's defaults.
func deltaProps(k kind, tok deltaToken) []*prop {
	sc := schemas[k]
	if !tok.HasSel {
		return sc.defaults
	}
	want := map[string]bool{"id": true}
	for _, n := range tok.Select {
		want[n] = true
	}
	var out []*prop
	for _, p := range sc.props {
		if want[strings.ToLower(p.name)] {
			out = append(out, p)
		}
	}
	return out
}

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
	"encoding/base64"
	"encoding/json"
	"slices"
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

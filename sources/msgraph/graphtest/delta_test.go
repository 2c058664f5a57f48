package graphtest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// mirror is what a client keeps from delta rounds: groups with their
// members, users with their properties.
type mirror struct {
	groups map[string]map[string]any // id → properties (merged)
	member map[string]map[string]bool
	users  map[string]map[string]any
}

func newMirror() *mirror {
	return &mirror{groups: map[string]map[string]any{}, member: map[string]map[string]bool{}, users: map[string]map[string]any{}}
}

// round follows a delta round from target to its deltaLink, applying every
// page; it returns the deltaLink, the pages and the objects seen.
func (m *mirror) round(t *testing.T, s *Server, target string) (deltaLink string, pages int, objects []map[string]any) {
	t.Helper()
	for target != "" {
		a := get(t, s, target)
		if a.status != 200 {
			t.Fatalf("%s: %d %s", target, a.status, a.raw)
		}
		pages++
		users := strings.Contains(target, "/users/")
		for _, o := range a.values() {
			objects = append(objects, o)
			id := o["id"].(string)
			if _, removed := o["@removed"]; removed {
				if users {
					delete(m.users, id)
				} else {
					delete(m.groups, id)
					delete(m.member, id)
				}
				continue
			}
			if users {
				m.users[id] = o
				continue
			}
			props := map[string]any{}
			for k, v := range o {
				if k != "members@delta" {
					props[k] = v
				}
			}
			m.groups[id] = props
			if m.member[id] == nil {
				m.member[id] = map[string]bool{}
			}
			if md, ok := o["members@delta"].([]any); ok {
				for _, e := range md {
					e := e.(map[string]any)
					if _, removed := e["@removed"]; removed {
						delete(m.member[id], e["id"].(string))
					} else {
						m.member[id][e["id"].(string)] = true
						if !strings.HasPrefix(e["@odata.type"].(string), "#microsoft.graph.") {
							t.Fatalf("member entry without @odata.type: %v", e)
						}
					}
				}
			}
		}
		next, _ := a.body["@odata.nextLink"].(string)
		delta, _ := a.body["@odata.deltaLink"].(string)
		if (next == "") == (delta == "") {
			t.Fatalf("page has nextLink %q and deltaLink %q: exactly one is expected", next, delta)
		}
		for _, l := range []string{next, delta} {
			if l != "" && !strings.HasPrefix(l, s.URL+"/v1.0/") {
				t.Fatalf("link %q does not point at the server", l)
			}
		}
		target, deltaLink = next, delta
	}
	return deltaLink, pages, objects
}

// check compares the mirror's groups, or its users, with the tenant.
func (m *mirror) check(t *testing.T, tn *Tenant, users bool) {
	t.Helper()
	if users {
		m.checkUsers(t, tn)
		return
	}
	if got, want := slices.Sorted(maps.Keys(m.groups)), slices.Sorted(slices.Values(groupIDs(tn.Groups))); !slices.Equal(got, want) {
		t.Fatalf("groups:\n got  %v\n want %v", got, want)
	}
	for _, g := range tn.Groups {
		want := slices.Clone(g.Members)
		slices.Sort(want)
		if got := slices.Sorted(maps.Keys(m.member[g.ID])); !slices.Equal(got, slices.Compact(want)) {
			t.Fatalf("members of %s:\n got  %v\n want %v", g.DisplayName, got, want)
		}
		if m.groups[g.ID]["displayName"] != g.DisplayName {
			t.Fatalf("group %s: displayName %v", g.ID, m.groups[g.ID]["displayName"])
		}
	}
}

func (m *mirror) checkUsers(t *testing.T, tn *Tenant) {
	t.Helper()
	if len(m.users) != len(tn.Users) {
		t.Fatalf("users: %d, want %d", len(m.users), len(tn.Users))
	}
	for _, u := range tn.Users {
		got := m.users[u.ID]
		if got["userPrincipalName"] != u.UserPrincipalName || got["accountEnabled"] != u.AccountEnabled || got["userType"] != u.UserType {
			t.Fatalf("user %s: %v, want %+v", u.ID, got, u)
		}
		if mail, _ := got["mail"].(string); mail != u.Mail {
			t.Fatalf("user %s: mail %q, want %q", u.ID, mail, u.Mail)
		}
	}
}

const groupDelta = "/v1.0/groups/delta()?$select=displayName,groupTypes,securityEnabled,mailEnabled,members"
const userDelta = "/v1.0/users/delta?$select=id,userPrincipalName,mail,accountEnabled,userType"

func TestDeltaFullRoundPagesAndMerges(t *testing.T) {
	tn := Generate(GenOptions{Seed: 2, Users: 120, Groups: 30, MaxDepth: 2, MembersPerGroup: 15, Devices: 5})
	s := New(t, tn, WithDelta(DeltaOptions{ObjectsPerPage: 4, MembersPerPage: 7, EmptyPages: true}))
	m := newMirror()
	link, pages, objs := m.round(t, s, groupDelta)
	m.check(t, tn, false)
	if link == "" || !strings.Contains(link, "$deltatoken=") {
		t.Fatalf("deltaLink %q", link)
	}
	seen := map[string]int{}
	for _, o := range objs {
		seen[o["id"].(string)]++
	}
	repeated := 0
	for _, n := range seen {
		if n > 1 {
			repeated++
		}
	}
	if repeated == 0 || pages < 10 {
		t.Fatalf("%d pages, %d groups over several pages: small pages should split groups", pages, repeated)
	}
	if st := s.Stats(); st.GroupDeltaPages != int64(pages) {
		t.Fatalf("stats: %+v", st)
	}
	// Nothing changed: one (empty) page with a new deltaLink.
	link2, pages, objs := m.round(t, s, link)
	if len(objs) != 0 || pages != 1 || link2 == "" {
		t.Fatalf("no change: %d objects on %d pages", len(objs), pages)
	}

	// Users, without $select: Graph's default properties, unset ones left out.
	mu := newMirror()
	_, _, objs = mu.round(t, s, "/v1.0/users/delta")
	if len(objs) != len(tn.Users) {
		t.Fatalf("users: %d", len(objs))
	}
	for _, o := range objs {
		if _, ok := o["accountEnabled"]; ok {
			t.Fatalf("default user properties include accountEnabled: %v", o)
		}
		if v, ok := o["mail"]; ok && v == nil {
			t.Fatalf("an unset property is written as null: %v", o)
		}
	}
}

func TestDeltaChanges(t *testing.T) {
	tn := &Tenant{
		Users: []User{
			{ID: "00000000-0000-0000-0000-0000000000u1", UserPrincipalName: "u1@x", AccountEnabled: true, UserType: "Member"},
			{ID: "00000000-0000-0000-0000-0000000000u2", UserPrincipalName: "u2@x", AccountEnabled: true, UserType: "Member"},
			{ID: "00000000-0000-0000-0000-0000000000u3", UserPrincipalName: "u3@x", AccountEnabled: true, UserType: "Member"},
		},
		Groups: []Group{
			{ID: "00000000-0000-0000-0000-0000000000g1", DisplayName: "One", SecurityEnabled: true, Members: []string{"00000000-0000-0000-0000-0000000000u1"}},
			{ID: "00000000-0000-0000-0000-0000000000g2", DisplayName: "Two", SecurityEnabled: true, Members: []string{"00000000-0000-0000-0000-0000000000u2"}},
			{ID: "00000000-0000-0000-0000-0000000000g3", DisplayName: "M365", GroupTypes: []string{"Unified"}, MailEnabled: true},
			{ID: "00000000-0000-0000-0000-0000000000g4", DisplayName: "Quiet", SecurityEnabled: true, Members: []string{"00000000-0000-0000-0000-0000000000u3"}},
		},
	}
	s := New(t, tn)
	m, mu := newMirror(), newMirror()
	gl, _, _ := m.round(t, s, groupDelta)
	ul, _, _ := mu.round(t, s, userDelta)

	must(t, s.Mutate(func(t *Tenant) {
		g1, g2 := t.Group("00000000-0000-0000-0000-0000000000g1"), t.Group("00000000-0000-0000-0000-0000000000g2")
		g1.Members = append(g1.Members, "00000000-0000-0000-0000-0000000000u2", "00000000-0000-0000-0000-0000000000g2")
		g2.DisplayName = "Two renamed"
		g2.Members = nil
		t.Groups = append(t.Groups, Group{ID: "00000000-0000-0000-0000-0000000000g5", DisplayName: "New", SecurityEnabled: true,
			Members: []string{"00000000-0000-0000-0000-0000000000u3"}})
		t.Users[0].AccountEnabled = false
	}))
	// Added and removed again between two rounds: not a change.
	must(t, s.Mutate(func(t *Tenant) {
		g4 := t.Group("00000000-0000-0000-0000-0000000000g4")
		g4.Members = append(g4.Members, "00000000-0000-0000-0000-0000000000u1")
	}))
	must(t, s.Mutate(func(t *Tenant) {
		g4 := t.Group("00000000-0000-0000-0000-0000000000g4")
		g4.Members = g4.Members[:1]
	}))
	s.RemoveGroup("00000000-0000-0000-0000-0000000000g3")
	s.RemoveUser("00000000-0000-0000-0000-0000000000u3")

	_, _, objs := m.round(t, s, gl)
	m.check(t, s.Tenant(), false)
	byID := map[string]map[string]any{}
	for _, o := range objs {
		byID[o["id"].(string)] = o
	}
	if _, ok := byID["00000000-0000-0000-0000-0000000000g4"]; !ok {
		t.Fatalf("g4 lost u3 (deleted): it must appear: %v", objs)
	}
	if got := byID["00000000-0000-0000-0000-0000000000g3"]["@removed"]; fmt.Sprint(got) != "map[reason:changed]" {
		t.Fatalf("deleted Microsoft 365 group: %v", got)
	}
	g1 := byID["00000000-0000-0000-0000-0000000000g1"]
	if md := g1["members@delta"].([]any); len(md) != 2 || g1["displayName"] != "One" {
		t.Fatalf("g1: only the two added members, with its properties: %v", g1)
	}
	g2 := byID["00000000-0000-0000-0000-0000000000g2"]
	if md := g2["members@delta"].([]any); len(md) != 1 || fmt.Sprint(md[0].(map[string]any)["@removed"]) != "map[reason:deleted]" || g2["displayName"] != "Two renamed" {
		t.Fatalf("g2: %v", g2)
	}
	if len(byID) != 5 { // g1, g2, g3 (removed), g4 (u3 deleted), g5 (new)
		t.Fatalf("changed groups: %v", slices.Sorted(maps.Keys(byID)))
	}
	_, _, objs = mu.round(t, s, ul)
	mu.check(t, s.Tenant(), true)
	if len(objs) != 2 {
		t.Fatalf("changed users: %v", objs)
	}
	for _, o := range objs {
		if o["id"] == "00000000-0000-0000-0000-0000000000u3" && fmt.Sprint(o["@removed"]) != "map[reason:changed]" {
			t.Fatalf("deleted user: %v", o)
		}
	}
	// A deleted security group cannot be restored: reason deleted.
	gl2 := gl
	gl, _, _ = m.round(t, s, gl2)
	s.RemoveGroup("00000000-0000-0000-0000-0000000000g1")
	_, _, objs = m.round(t, s, gl)
	if len(objs) != 1 || fmt.Sprint(objs[0]["@removed"]) != "map[reason:deleted]" {
		t.Fatalf("deleted security group: %v", objs)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeltaLatestExpiryAndReset(t *testing.T) {
	tn := Generate(GenOptions{Seed: 3, Users: 20, Groups: 6})
	s := New(t, tn)
	a := get(t, s, groupDelta+"&$deltatoken=latest")
	link, _ := a.body["@odata.deltaLink"].(string)
	if a.status != 200 || len(a.values()) != 0 || link == "" {
		t.Fatalf("latest: %d %s", a.status, a.raw)
	}
	s.Mutate(func(t *Tenant) { t.Groups[2].DisplayName = "Renamed" })
	m := newMirror()
	link, _, objs := m.round(t, s, link)
	if len(objs) != 1 || objs[0]["displayName"] != "Renamed" {
		t.Fatalf("since latest: %v", objs)
	}
	// The select carried by the token: properties not selected stay out.
	if _, ok := objs[0]["isAssignableToRole"]; ok {
		t.Fatalf("unselected property returned: %v", objs[0])
	}

	// Tokens older than the lifetime, or expired by hand: 400 syncStateNotFound.
	start := time.Now()
	s.SetClock(func() time.Time { return start.Add(8 * 24 * time.Hour) })
	if code := get(t, s, link).errorCode(t, 400); code != "syncStateNotFound" {
		t.Fatalf("old token: %s", code)
	}
	s.SetClock(nil)
	s.ExpireDeltaTokens()
	if code := get(t, s, link).errorCode(t, 400); code != "syncStateNotFound" {
		t.Fatalf("expired token: %s", code)
	}
	if code := get(t, s, "/v1.0/groups/delta?$deltatoken=garbage").errorCode(t, 400); code != "syncStateInvalid" {
		t.Fatalf("garbage token: %s", code)
	}

	// A reset: 410 Gone, Location starts a full round with the same $select.
	m = newMirror()
	link, _, _ = m.round(t, s, groupDelta)
	s.ResetDelta()
	a = get(t, s, link)
	if code := a.errorCode(t, 410); code != "resyncRequired" {
		t.Fatalf("reset: %s", code)
	}
	loc := a.header.Get("Location")
	if !strings.HasPrefix(loc, s.URL+"/v1.0/groups/delta") || !strings.Contains(loc, "members") {
		t.Fatalf("Location %q", loc)
	}
	m = newMirror()
	m.round(t, s, loc)
	m.check(t, s.Tenant(), false)
}

func TestDeltaQueryOptions(t *testing.T) {
	tn := Generate(GenOptions{Seed: 4, Users: 20, Groups: 8})
	s := New(t, tn)
	for _, q := range []string{"$top=5", "$expand=members", "$orderby=displayName", "$filter=startswith(displayName,'a')"} {
		if code := get(t, s, "/v1.0/groups/delta?"+q).errorCode(t, 400); code != "Request_UnsupportedQuery" {
			t.Errorf("%s: %s", q, code)
		}
	}
	ids := []string{tn.Groups[1].ID, tn.Groups[5].ID}
	m := newMirror()
	_, _, objs := m.round(t, s, "/v1.0/groups/delta?$select=displayName,members&$filter="+url.QueryEscape("id eq '"+ids[0]+"' or id eq '"+ids[1]+"'"))
	if len(objs) != 2 {
		t.Fatalf("filtered: %v", objs)
	}
	var many []string
	for i := range 51 {
		many = append(many, fmt.Sprintf("id eq '00000000-0000-0000-0000-%012d'", i))
	}
	if code := get(t, s, "/v1.0/groups/delta?$filter="+url.QueryEscape(strings.Join(many, " or "))).errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("51 ids: %s", code)
	}
	if code := get(t, s, "/v1.0/groups/delta?$select=noSuchProperty").errorCode(t, 400); code != "BadRequest" {
		t.Errorf("unknown property: %s", code)
	}
	s.SetPermissions("GroupMember.Read.All")
	if code := get(t, s, userDelta).errorCode(t, 403); code != "Authorization_RequestDenied" {
		t.Errorf("users delta without User.Read.All: %s", code)
	}
	if a := get(t, s, groupDelta); a.status != 200 {
		t.Errorf("groups delta with GroupMember.Read.All: %d", a.status)
	}
}

// Random tenant changes between rounds, with small pages, empty pages and
// replays: a client applying every round holds the tenant.
func TestDeltaRoundsFollowRandomChanges(t *testing.T) {
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		tn := Generate(GenOptions{Seed: int64(seed), Users: 30, Groups: 10, MaxDepth: 2, MembersPerGroup: 6, Devices: 2})
		s := New(t, tn, WithDelta(DeltaOptions{ObjectsPerPage: 1 + r.IntN(4), MembersPerPage: 1 + r.IntN(6), EmptyPages: r.IntN(2) == 0, Replay: r.IntN(2) == 0}))
		m, mu := newMirror(), newMirror()
		gl, _, _ := m.round(t, s, groupDelta)
		ul, _, _ := mu.round(t, s, userDelta)
		for range 8 {
			for range 1 + r.IntN(3) {
				must(t, s.Mutate(func(t *Tenant) { randomChange(r, t) }))
			}
			gl, _, _ = m.round(t, s, gl)
			ul, _, _ = mu.round(t, s, ul)
			m.check(t, s.Tenant(), false)
			mu.check(t, s.Tenant(), true)
		}
	}
}

// randomChange makes one change of the kinds a directory sees.
func randomChange(r *rand.Rand, t *Tenant) {
	n := len(t.Groups)
	switch r.IntN(8) {
	case 0, 1: // add a user
		if n > 0 && len(t.Users) > 0 {
			g := &t.Groups[r.IntN(n)]
			u := t.Users[r.IntN(len(t.Users))].ID
			if !slices.Contains(g.Members, u) {
				g.Members = append(g.Members, u)
			}
		}
	case 2: // remove a member
		if n > 0 {
			g := &t.Groups[r.IntN(n)]
			if len(g.Members) > 0 {
				i := r.IntN(len(g.Members))
				g.Members = slices.Delete(g.Members, i, i+1)
			}
		}
	case 3: // rename
		if n > 0 {
			t.Groups[r.IntN(n)].DisplayName = fmt.Sprintf("renamed-%d", r.IntN(1000))
		}
	case 4: // create
		t.Groups = append(t.Groups, Group{ID: randomGUID(r), DisplayName: fmt.Sprintf("new-%d", r.IntN(1000)), SecurityEnabled: true})
	case 5: // delete
		if n > 1 {
			id := t.Groups[r.IntN(n)].ID
			t.Groups = slices.DeleteFunc(t.Groups, func(g Group) bool { return g.ID == id })
			for i := range t.Groups {
				t.Groups[i].Members = slices.DeleteFunc(t.Groups[i].Members, func(m string) bool { return m == id })
			}
		}
	case 6: // nest
		if n > 1 {
			a, b := &t.Groups[r.IntN(n)], t.Groups[r.IntN(n)].ID
			if a.ID != b && !slices.Contains(a.Members, b) {
				a.Members = append(a.Members, b)
			}
		}
	case 7: // a user's properties
		if len(t.Users) > 0 {
			u := &t.Users[r.IntN(len(t.Users))]
			u.AccountEnabled = !u.AccountEnabled
			u.Mail = fmt.Sprintf("m%d@x.example", r.IntN(1000))
		}
	}
}

func randomGUID(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
}

package graphtest

import (
	"net/url"
	"slices"
	"testing"
)

// TestMemberOf: direct and transitive groups of users and groups, with
// casts, $select, paging by nextLink, 404 for what does not exist, and a
// cycle that never lists a group in itself.
func TestMemberOf(t *testing.T) {
	u := func(id string) User {
		return User{ID: id, UserPrincipalName: id[len(id)-2:] + "@contoso.example", AccountEnabled: true}
	}
	const (
		u1 = "00000000-0000-4000-8000-0000000000a1"
		u2 = "00000000-0000-4000-8000-0000000000a2"
		ga = "00000000-0000-4000-8000-0000000000b1"
		gb = "00000000-0000-4000-8000-0000000000b2"
		gc = "00000000-0000-4000-8000-0000000000b3"
		gd = "00000000-0000-4000-8000-0000000000b4"
	)
	tn := &Tenant{
		Users: []User{u(u1), u(u2)},
		Groups: []Group{
			{ID: ga, DisplayName: "A", SecurityEnabled: true, Members: []string{u1, gb}},
			{ID: gb, DisplayName: "B", SecurityEnabled: true, Members: []string{u1, gc}},
			{ID: gc, DisplayName: "C", SecurityEnabled: true, Members: []string{ga}}, // A ⊃ B ⊃ C ⊃ A
			{ID: gd, DisplayName: "D", GroupTypes: []string{"Unified"}, MailEnabled: true, Members: []string{u2}},
		},
	}
	s := New(t, tn)
	for path, want := range map[string][]string{
		"/users/" + u1 + "/memberOf":                                  {ga, gb},
		"/users/a1@contoso.example/memberOf/microsoft.graph.group":    {ga, gb},
		"/users/" + u1 + "/transitiveMemberOf/graph.group":            {ga, gb, gc},
		"/users/" + u2 + "/transitiveMemberOf":                        {gd},
		"/groups/" + ga + "/memberOf/microsoft.graph.group":           {gc},
		"/groups/" + ga + "/transitiveMemberOf/microsoft.graph.group": {gc, gb},
		"/groups/" + gd + "/memberOf":                                 nil,
	} {
		objs, pages := readAll(t, s, "/v1.0"+path+"?$top=1&$select=id,displayName,securityEnabled")
		if got := ids(objs); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
		if pages != max(1, len(want)) {
			t.Errorf("%s: %d pages of one, want %d", path, pages, max(1, len(want)))
		}
		for _, o := range objs {
			if o["@odata.type"] != "#microsoft.graph.group" || o["displayName"] == nil || o["securityEnabled"] == nil || o["mailEnabled"] != nil {
				t.Errorf("%s: object %v: want its type and only the selected properties", path, o)
			}
		}
	}
	if st := s.Stats(); st.MemberOfPages == 0 || st.TransitiveMemberOfPages == 0 {
		t.Errorf("stats %+v", st)
	}
	missing := "00000000-1111-4222-8333-444444444444"
	for _, path := range []string{"/users/" + missing + "/memberOf", "/users/nobody@contoso.example/transitiveMemberOf",
		"/users/nobody@contoso.example", "/groups/" + missing + "/memberOf/microsoft.graph.group"} {
		if code := get(t, s, "/v1.0"+path).errorCode(t, 404); code != "Request_ResourceNotFound" {
			t.Errorf("%s: %s", path, code)
		}
	}
	if code := get(t, s, "/v1.0/groups/"+ga+"/memberOf/graph.bogus").errorCode(t, 400); code != "BadRequest" {
		t.Errorf("bad cast: %s", code)
	}
	// Filtering memberOf is an advanced query, as filtering members is.
	f := "/v1.0/users/" + u1 + "/memberOf?$filter=" + url.QueryEscape("displayName eq 'B'")
	if code := get(t, s, f).errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("memberOf filter without ConsistencyLevel: %s", code)
	}
	if got := ids(get(t, s, f+"&$count=true", "ConsistencyLevel", "eventual").values()); !slices.Equal(got, []string{gb}) {
		t.Errorf("memberOf filter: %v", got)
	}
	// A user's memberships need User.Read.All or GroupMember.Read.All; a
	// group's, a permission to read groups.
	for _, c := range []struct {
		perm, path string
		status     int
	}{
		{"User.Read.All", "/users/" + u1 + "/transitiveMemberOf", 200},
		{"GroupMember.Read.All", "/users/" + u1 + "/memberOf", 200},
		{"Organization.Read.All", "/users/" + u1 + "/memberOf", 403},
		{"User.Read.All", "/groups/" + ga + "/memberOf", 403},
	} {
		s.SetPermissions(c.perm)
		if a := get(t, s, "/v1.0"+c.path); a.status != c.status {
			t.Errorf("%s with %s: %d, want %d", c.path, c.perm, a.status, c.status)
		}
	}
	s.SetPermissions("GroupMember.Read.All", "User.Read.All")
	// The filters a slice sends: users by mail or upn, groups by name and
	// by a filter with id in (...).
	for path, want := range map[string][]string{
		"/users?$filter=" + url.QueryEscape("userPrincipalName eq 'a2@contoso.example' or mail eq 'a2@contoso.example'"): {u2},
		"/groups?$filter=" + url.QueryEscape("displayName eq 'C'"):                                                       {gc},
		"/groups?$filter=" + url.QueryEscape("(securityEnabled eq true) and id in ('"+gc+"','"+gd+"')"):                  {gc},
	} {
		if got := ids(get(t, s, "/v1.0"+path).values()); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
}

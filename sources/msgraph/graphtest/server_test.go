package graphtest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// answer is a decoded HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// get requests target (a path on the server or an absolute URL) with the
// server's token; headers are name, value pairs, and an Authorization pair
// replaces the token ("" removes it).
func get(t *testing.T, s *Server, target string, headers ...string) answer {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = s.URL + target
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return send(t, s.Client(), req)
}

func send(t *testing.T, c *http.Client, req *http.Request) answer {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", req.Method, req.URL, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: %d answer is not JSON: %v\n%s", req.Method, req.URL, resp.StatusCode, err, raw)
		}
	}
	return a
}

// values returns the "value" array of a collection page.
func (a answer) values() []map[string]any {
	var out []map[string]any
	for _, v := range a.body["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func (a answer) nextLink() string { s, _ := a.body["@odata.nextLink"].(string); return s }

// errorCode checks the answer is a Graph error of that status and returns
// its code, after checking the whole shape.
func (a answer) errorCode(t *testing.T, status int) string {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	e, ok := a.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", a.raw)
	}
	inner, _ := e["innerError"].(map[string]any)
	for _, k := range []string{"date", "request-id", "client-request-id"} {
		if s, _ := inner[k].(string); s == "" {
			t.Errorf("innerError.%s missing: %s", k, a.raw)
		}
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error without message (the SDK panics on those): %s", a.raw)
	}
	return e["code"].(string)
}

// readAll follows nextLinks verbatim and returns every object.
func readAll(t *testing.T, s *Server, target string, headers ...string) (objs []map[string]any, pages int) {
	t.Helper()
	for target != "" {
		a := get(t, s, target, headers...)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, a.status, a.raw)
		}
		objs = append(objs, a.values()...)
		pages++
		target = a.nextLink()
		if target != "" && !strings.HasPrefix(target, s.URL+"/v1.0/") {
			t.Fatalf("nextLink %q does not point to the server", target)
		}
	}
	return objs, pages
}

func ids(objs []map[string]any) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o["id"].(string))
	}
	return out
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func groupIDs(gs []Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func TestGroupsPaging(t *testing.T) {
	tn := Generate(GenOptions{Seed: 1, Users: 50, Groups: 250})
	s := New(t, tn)

	first := get(t, s, "/v1.0/groups?$select=id,displayName&$top=100")
	next := first.nextLink()
	u, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/v1.0/groups" || q.Get("$select") != "id,displayName" || q.Get("$top") != "100" || q.Get("$skiptoken") == "" {
		t.Errorf("nextLink %s does not keep the query", next)
	}
	objs, pages := readAll(t, s, "/v1.0/groups?$select=id,displayName&$top=100")
	if pages != 3 || !slices.Equal(ids(objs), groupIDs(tn.Groups)) {
		t.Errorf("%d pages, ids in order %v", pages, slices.Equal(ids(objs), groupIDs(tn.Groups)))
	}
	if got := s.Stats().GroupPages; got != 4 {
		t.Errorf("Stats.GroupPages = %d, want 4", got)
	}

	// Default page size is 100; the SDK's %24 spelling works too.
	if n := len(get(t, s, "/v1.0/groups").values()); n != 100 {
		t.Errorf("default page has %d groups", n)
	}
	if n := len(get(t, s, "/v1.0/groups?%24top=7").values()); n != 7 {
		t.Errorf("%%24top=7 gave %d groups", n)
	}
	for _, top := range []string{"1000", "0", "x"} {
		if code := get(t, s, "/v1.0/groups?$top="+top).errorCode(t, 400); code != "Request_BadRequest" {
			t.Errorf("$top=%s: %s", top, code)
		}
	}
	if code := get(t, s, "/v1.0/groups?$skiptoken=garbage!").errorCode(t, 400); code != "Directory_ExpiredPageToken" {
		t.Errorf("bad skiptoken: %s", code)
	}
}

func TestMembersPagingOver999(t *testing.T) {
	tn := Generate(GenOptions{Seed: 2, Users: 2500, Groups: 10})
	all := tn.Groups[0] // All Company: every member user
	s := New(t, tn)
	objs, pages := readAll(t, s, "/v1.0/groups/"+all.ID+"/members?$select=id,userPrincipalName&$top=999")
	if pages != 3 || !slices.Equal(ids(objs), all.Members) {
		t.Fatalf("%d pages, %d members of %d", pages, len(objs), len(all.Members))
	}
	for _, o := range objs[:3] {
		if o["@odata.type"] != "#microsoft.graph.user" || !slices.Equal(keys(o), []string{"@odata.type", "id", "userPrincipalName"}) {
			t.Errorf("member %v", o)
		}
	}
	if code := get(t, s, "/v1.0/groups/"+all.ID+"/members?$top=1000").errorCode(t, 400); code != "Request_BadRequest" {
		t.Errorf("$top=1000: %s", code)
	}
	if st := s.Stats(); st.MemberPages != 4 || st.ResourceUnits != 3*2 {
		t.Errorf("stats %+v", st)
	}
}

func TestSelect(t *testing.T) {
	tn, err := LoadTenant("testdata/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := New(t, tn)
	g := get(t, s, "/v1.0/groups?$select=displayName").values()[0]
	if !slices.Equal(keys(g), []string{"displayName", "id"}) {
		t.Errorf("$select=displayName: %v", g)
	}
	g = get(t, s, "/v1.0/groups?$select=DISPLAYNAME,groupTypes,description").values()[1]
	if !slices.Equal(keys(g), []string{"description", "displayName", "groupTypes", "id"}) || g["description"] != nil {
		t.Errorf("case-insensitive $select with an unmodeled property: %v", g)
	}
	// Without $select, groups carry every property and users Graph's default
	// set, which has neither accountEnabled nor userType.
	g = get(t, s, "/v1.0/groups").values()[0]
	for _, k := range []string{"securityEnabled", "mailEnabled", "groupTypes", "isAssignableToRole", "mail", "visibility"} {
		if _, ok := g[k]; !ok {
			t.Errorf("default group lacks %s", k)
		}
	}
	u := get(t, s, "/v1.0/users").values()[0]
	if _, ok := u["accountEnabled"]; ok || u["userPrincipalName"] != "adele@contoso.example" {
		t.Errorf("default user: %v", u)
	}
	u = get(t, s, "/v1.0/users?$select=id,accountEnabled,userType,mail").values()[1]
	want := map[string]any{"id": tn.Users[1].ID, "accountEnabled": false, "userType": "Guest", "mail": nil}
	if !maps.Equal(u, want) {
		t.Errorf("selected user %v, want %v", u, want)
	}
	if code := get(t, s, "/v1.0/groups?$select=id,bogus").errorCode(t, 400); code != "BadRequest" {
		t.Errorf("unknown property: %s", code)
	}
	// Members: properties of any member type may be selected.
	ms := get(t, s, "/v1.0/groups/"+tn.Groups[0].ID+"/members?$select=id,displayName,userPrincipalName").values()
	if len(ms) != 2 || !slices.Equal(keys(ms[0]), []string{"@odata.type", "displayName", "id", "userPrincipalName"}) ||
		!slices.Equal(keys(ms[1]), []string{"@odata.type", "displayName", "id"}) || ms[1]["@odata.type"] != "#microsoft.graph.group" {
		t.Errorf("members: %v", ms)
	}
}

func TestFilters(t *testing.T) {
	tn := Generate(GenOptions{Seed: 4, Users: 30, Groups: 120, DuplicateNames: 3})
	s := New(t, tn)
	where := func(f func(g Group) bool) []string {
		var out []string
		for _, g := range tn.Groups {
			if f(g) {
				out = append(out, g.ID)
			}
		}
		return out
	}
	some := tn.Groups[10]
	cases := []struct {
		filter   string
		advanced bool
		want     []string
	}{
		{"securityEnabled eq true", false, where(func(g Group) bool { return g.SecurityEnabled })},
		{"mailEnabled eq false", false, where(func(g Group) bool { return !g.MailEnabled })},
		{"groupTypes/any(c:c eq 'Unified')", false, where(func(g Group) bool { return g.hasType("Unified") })},
		{"groupTypes/any(x:x eq 'dynamicmembership')", false, where(func(g Group) bool { return g.hasType("DynamicMembership") })},
		{"startswith(displayName,'sg-')", false, where(func(g Group) bool { return strings.HasPrefix(g.DisplayName, "SG-") })},
		{"displayName eq '" + some.DisplayName + "'", false, where(func(g Group) bool { return g.DisplayName == some.DisplayName })},
		{fmt.Sprintf("id in ('%s','%s')", tn.Groups[3].ID, tn.Groups[5].ID), false, []string{tn.Groups[3].ID, tn.Groups[5].ID}},
		{"securityEnabled eq true and (mailEnabled eq true or isAssignableToRole eq true)", false,
			where(func(g Group) bool { return g.SecurityEnabled && (g.MailEnabled || g.IsAssignableToRole) })},
		{"mailEnabled eq true and not groupTypes/any(c:c eq 'Unified')", true,
			where(func(g Group) bool { return g.MailEnabled && !g.hasType("Unified") })},
		{"securityEnabled ne true", true, where(func(g Group) bool { return !g.SecurityEnabled })},
		{"endswith(displayName,'team 42')", true, where(func(g Group) bool { return strings.HasSuffix(g.DisplayName, "Team 42") })},
		{"description eq null and startswith(displayName, 'All')", true, where(func(g Group) bool { return strings.HasPrefix(g.DisplayName, "All") })},
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			target := "/v1.0/groups?$select=id&$top=999&$filter=" + url.QueryEscape(c.filter)
			if c.advanced {
				if code := get(t, s, target).errorCode(t, 400); code != "Request_UnsupportedQuery" {
					t.Errorf("without ConsistencyLevel: %s", code)
				}
				target += "&$count=true"
			}
			a := get(t, s, target, "ConsistencyLevel", "eventual")
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			if got := ids(a.values()); !slices.Equal(got, c.want) {
				t.Errorf("got %d groups %v, want %d %v", len(got), got, len(c.want), c.want)
			}
			if c.advanced && a.body["@odata.count"] != float64(len(c.want)) {
				t.Errorf("@odata.count = %v, want %d", a.body["@odata.count"], len(c.want))
			}
		})
	}
	for filter, code := range map[string]string{
		"bogus eq 'x'":                     "BadRequest",
		"displayName eq":                   "BadRequest",
		"securityEnabled eq 'yes'":         "BadRequest",
		"startswith(displayName,'a'":       "BadRequest",
		"displayName gt 'a'":               "Request_UnsupportedQuery",
		"contains(displayName,'a')":        "Request_UnsupportedQuery",
		"groupTypes/all(c:c eq 'Unified')": "Request_UnsupportedQuery",
	} {
		if got := get(t, s, "/v1.0/groups?$filter="+url.QueryEscape(filter)).errorCode(t, 400); got != code {
			t.Errorf("%s: %s, want %s", filter, got, code)
		}
	}
	// Filters cost the same: paging continues past non-matching groups.
	objs, _ := readAll(t, s, "/v1.0/groups?$top=5&$filter="+url.QueryEscape("groupTypes/any(c:c eq 'Unified')"))
	if !slices.Equal(ids(objs), cases[2].want) {
		t.Errorf("paged filter: %d groups, want %d", len(objs), len(cases[2].want))
	}
}

func TestSearchAndCount(t *testing.T) {
	tn := Generate(GenOptions{Seed: 5, Users: 40, Groups: 30})
	s := New(t, tn)
	search := "/v1.0/groups?$search=" + url.QueryEscape(`"displayName:team"`)
	if code := get(t, s, search).errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("$search without ConsistencyLevel: %s", code)
	}
	a := get(t, s, search, "ConsistencyLevel", "eventual")
	for _, g := range a.values() {
		if !strings.Contains(strings.ToLower(g["displayName"].(string)), "team") {
			t.Errorf("search matched %v", g["displayName"])
		}
	}
	if len(a.values()) == 0 {
		t.Error("search matched nothing")
	}
	if code := get(t, s, "/v1.0/groups?$count=true").errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("$count without ConsistencyLevel: %s", code)
	}
	a = get(t, s, "/v1.0/users?$count=true&$top=1", "ConsistencyLevel", "eventual")
	if a.body["@odata.count"] != float64(40) || len(a.values()) != 1 {
		t.Errorf("count: %v", a.body["@odata.count"])
	}
	// /$count segments answer text.
	if code := get(t, s, "/v1.0/users/$count").errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("/users/$count without ConsistencyLevel: %s", code)
	}
	for path, want := range map[string]int{
		"/v1.0/users/$count": 40,
		"/v1.0/groups/$count?$filter=" + url.QueryEscape("securityEnabled eq true"): len(slices.DeleteFunc(slices.Clone(tn.Groups), func(g Group) bool { return !g.SecurityEnabled })),
		"/v1.0/groups/" + tn.Groups[0].ID + "/members/graph.user/$count":            len(tn.Groups[0].Members),
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		req.Header.Set("ConsistencyLevel", "eventual")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprint(want) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s = %q (%s), want %d", path, body, resp.Header.Get("Content-Type"), want)
		}
	}
	if code := get(t, s, "/v1.0/groups?$orderby=displayName").errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("$orderby: %s", code)
	}
}

func TestCastsAndMemberTypes(t *testing.T) {
	tn, err := LoadTenant("testdata/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := New(t, tn, WithPermissions("Directory.Read.All"))
	eng, leads := tn.Groups[0], tn.Groups[1]
	for path, want := range map[string][]string{
		"/members":                                 {tn.Users[0].ID, leads.ID},
		"/members/graph.user":                      {tn.Users[0].ID},
		"/members/microsoft.graph.user":            {tn.Users[0].ID},
		"/members/graph.group":                     {leads.ID},
		"/members/microsoft.graph.device":          nil,
		"/transitiveMembers":                       {tn.Users[0].ID, leads.ID, tn.Users[1].ID, tn.Devices[0].ID},
		"/transitiveMembers/graph.user":            {tn.Users[0].ID, tn.Users[1].ID},
		"/transitiveMembers/graph.device":          {tn.Devices[0].ID},
		"/transitiveMembers/microsoft.graph.group": {leads.ID},
	} {
		a := get(t, s, "/v1.0/groups/"+eng.ID+path)
		if a.status != 200 {
			t.Fatalf("%s: %d %s", path, a.status, a.raw)
		}
		if got := ids(a.values()); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	types := map[string]string{}
	for _, o := range get(t, s, "/v1.0/groups/"+eng.ID+"/transitiveMembers").values() {
		types[o["id"].(string)] = o["@odata.type"].(string)
	}
	if types[tn.Devices[0].ID] != "#microsoft.graph.device" || types[leads.ID] != "#microsoft.graph.group" {
		t.Errorf("types %v", types)
	}
	if code := get(t, s, "/v1.0/groups/"+eng.ID+"/members/graph.bogus").errorCode(t, 400); code != "BadRequest" {
		t.Errorf("bad cast: %s", code)
	}
	// Filtering members is an advanced query.
	f := "/v1.0/groups/" + eng.ID + "/members?$filter=" + url.QueryEscape("startswith(displayName,'Adele')")
	if code := get(t, s, f).errorCode(t, 400); code != "Request_UnsupportedQuery" {
		t.Errorf("member filter without ConsistencyLevel: %s", code)
	}
	if got := ids(get(t, s, f+"&$count=true", "ConsistencyLevel", "eventual").values()); !slices.Equal(got, []string{tn.Users[0].ID}) {
		t.Errorf("member filter: %v", got)
	}
}

func TestNotFound(t *testing.T) {
	s := New(t, Generate(GenOptions{Seed: 1, Users: 5, Groups: 5}))
	missing := "00000000-1111-4222-8333-444444444444"
	for _, path := range []string{"/v1.0/groups/" + missing, "/v1.0/groups/" + missing + "/members", "/v1.0/groups/" + missing + "/transitiveMembers/graph.user", "/v1.0/users/" + missing} {
		a := get(t, s, path)
		if code := a.errorCode(t, 404); code != "Request_ResourceNotFound" {
			t.Errorf("%s: %s", path, code)
		}
		if msg := a.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, missing) {
			t.Errorf("message %q does not name the id", msg)
		}
	}
	if code := get(t, s, "/v1.0/groups/not-a-guid").errorCode(t, 400); code != "Request_BadRequest" {
		t.Errorf("malformed id: %s", code)
	}
	if code := get(t, s, "/v1.0/applications").errorCode(t, 501); code != "NotImplemented" {
		t.Errorf("unimplemented path: %s", code)
	}
	if code := get(t, s, "/v1.0/groups/delta()/members").errorCode(t, 501); code != "NotImplemented" {
		t.Errorf("under delta: %s", code)
	}
	// Client request ids are echoed.
	a := get(t, s, "/v1.0/groups/"+missing, "client-request-id", "abc-123")
	if a.header.Get("client-request-id") != "abc-123" || a.body["error"].(map[string]any)["innerError"].(map[string]any)["client-request-id"] != "abc-123" {
		t.Errorf("client-request-id not echoed: %v %s", a.header, a.raw)
	}
}

func TestEntities(t *testing.T) {
	tn, err := LoadTenant("testdata/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := New(t, tn)
	g := get(t, s, "/v1.0/groups/"+tn.Groups[0].ID+"?$select=displayName")
	if g.body["displayName"] != "Engineering" || g.body["@odata.context"] != s.URL+"/v1.0/$metadata#groups/$entity" || len(g.body) != 3 {
		t.Errorf("group: %s", g.raw)
	}
	u := get(t, s, "/v1.0/users/ADELE@contoso.example?$select=id")
	if u.body["id"] != tn.Users[0].ID {
		t.Errorf("user by UPN: %s", u.raw)
	}
	if st := s.Stats(); st.GroupGets != 1 || st.UserGets != 1 || st.ResourceUnits != 1+1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAuthAndPermissions(t *testing.T) {
	tn, err := LoadTenant("testdata/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := New(t, tn, WithToken("secret-token"))
	if code := get(t, s, "/v1.0/groups", "Authorization", "").errorCode(t, 401); code != "InvalidAuthenticationToken" {
		t.Errorf("no token: %s", code)
	}
	if code := get(t, s, "/v1.0/groups", "Authorization", "Bearer wrong").errorCode(t, 401); code != "InvalidAuthenticationToken" {
		t.Errorf("wrong token: %s", code)
	}
	if a := get(t, s, "/v1.0/groups"); a.status != 200 {
		t.Errorf("right token: %d", a.status)
	}

	// Default permissions: GroupMember.Read.All and User.Read.All. Devices
	// are members the app may not read; the organization is out of reach.
	eng := "/v1.0/groups/" + tn.Groups[0].ID + "/transitiveMembers"
	for _, o := range get(t, s, eng).values() {
		if o["id"] == tn.Devices[0].ID && len(o) != 2 {
			t.Errorf("device without Device.Read.All: %v", o)
		}
		if o["id"] == tn.Users[0].ID && o["userPrincipalName"] == nil {
			t.Errorf("user with User.Read.All: %v", o)
		}
	}
	if code := get(t, s, "/v1.0/organization").errorCode(t, 403); code != "Authorization_RequestDenied" {
		t.Errorf("organization: %s", code)
	}

	s.SetPermissions("GroupMember.Read.All")
	if code := get(t, s, "/v1.0/users").errorCode(t, 403); code != "Authorization_RequestDenied" {
		t.Errorf("users without User.Read.All: %s", code)
	}
	for _, o := range get(t, s, eng+"?$select=id,displayName,userPrincipalName").values() {
		if o["@odata.type"] == "#microsoft.graph.user" && !slices.Equal(keys(o), []string{"@odata.type", "id"}) {
			t.Errorf("user member without User.Read.All: %v", o)
		}
		if o["@odata.type"] == "#microsoft.graph.group" && o["displayName"] != "Engineering Leads" {
			t.Errorf("group member: %v", o)
		}
	}

	s.SetPermissions("User.Read.All")
	if code := get(t, s, "/v1.0/groups").errorCode(t, 403); code != "Authorization_RequestDenied" {
		t.Errorf("groups without a group permission: %s", code)
	}

	s.SetPermissions("Directory.Read.All")
	org := get(t, s, "/v1.0/organization")
	if org.status != 200 || org.values()[0]["id"] != s.TenantID() {
		t.Errorf("organization: %s", org.raw)
	}
}

func TestTransitiveMembersMatchTenant(t *testing.T) {
	tn := Generate(GenOptions{Seed: 9, Users: 400, Groups: 80, MaxDepth: 3, MembersPerGroup: 15, Cycles: 3, Devices: 10})
	s := New(t, tn)
	for _, g := range tn.Groups {
		objs, _ := readAll(t, s, "/v1.0/groups/"+g.ID+"/transitiveMembers/graph.user?$select=id&$top=50")
		got := ids(objs)
		slices.Sort(got)
		if want := tn.TransitiveUsers(g.ID); !slices.Equal(got, want) {
			t.Fatalf("group %s: %d transitive users, want %d", g.DisplayName, len(got), len(want))
		}
		// Everything, nested groups included, each once, never the group itself.
		all, _ := readAll(t, s, "/v1.0/groups/"+g.ID+"/transitiveMembers?$select=id&$top=999")
		seen := map[string]bool{}
		for _, id := range ids(all) {
			if seen[id] || id == g.ID {
				t.Fatalf("group %s: %s listed twice or itself", g.DisplayName, id)
			}
			seen[id] = true
		}
		for _, m := range g.Members {
			if !seen[m] && m != g.ID {
				t.Fatalf("group %s: direct member %s missing from transitive members", g.DisplayName, m)
			}
		}
	}
}

func TestMutateBetweenPages(t *testing.T) {
	tn := Generate(GenOptions{Seed: 6, Users: 20, Groups: 30, MaxDepth: 2, MembersPerGroup: 5})
	s := New(t, tn)
	first := get(t, s, "/v1.0/groups?$select=id&$top=10")
	// The group the next page starts with vanishes, with its memberships.
	gone := tn.Groups[10]
	if !s.RemoveGroup(gone.ID) || s.RemoveGroup(gone.ID) {
		t.Fatal("RemoveGroup reports wrongly")
	}
	objs := first.values()
	for next := first.nextLink(); next != ""; {
		a := get(t, s, next)
		objs = append(objs, a.values()...)
		next = a.nextLink()
	}
	want := slices.DeleteFunc(groupIDs(tn.Groups), func(id string) bool { return id == gone.ID })
	if !slices.Equal(ids(objs), want) {
		t.Errorf("after removal: %d groups, want %d", len(objs), len(want))
	}
	if code := get(t, s, "/v1.0/groups/"+gone.ID+"/members").errorCode(t, 404); code != "Request_ResourceNotFound" {
		t.Errorf("members of a removed group: %s", code)
	}
	for _, g := range s.Tenant().Groups {
		if slices.Contains(g.Members, gone.ID) {
			t.Errorf("%s still lists the removed group", g.DisplayName)
		}
	}
	// Mutate validates.
	if err := s.Mutate(func(t *Tenant) { t.Groups[0].Members = append(t.Groups[0].Members, "nobody") }); err == nil {
		t.Error("Mutate accepted a dangling member")
	}
	if err := s.Mutate(func(t *Tenant) { t.Groups[0].DisplayName = "Renamed" }); err != nil {
		t.Fatal(err)
	}
	if g := get(t, s, "/v1.0/groups?$top=1&$select=displayName").values()[0]; g["displayName"] != "Renamed" {
		t.Errorf("after Mutate: %v", g)
	}
	if tn.Groups[0].DisplayName == "Renamed" {
		t.Error("Mutate changed the caller's tenant")
	}
}

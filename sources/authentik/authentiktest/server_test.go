package authentiktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, srv *Server, path, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s: %v: %s", path, err, body)
	}
	return resp.StatusCode, doc
}

func tenant() *Tenant {
	t := &Tenant{}
	for i := 1; i <= 5; i++ {
		t.Users = append(t.Users, User{PK: i, Username: string(rune('a'+i-1)) + "-user"})
	}
	t.Groups = []Group{{Name: "B", Users: []int{1, 2}}, {Name: "A", Parents: []string{"B"}}, {Name: "C", Parents: []string{"A", "B"}}}
	return t
}

func TestPagingLikeAuthentik(t *testing.T) {
	srv := New(t, tenant())
	status, doc := get(t, srv, "/api/v3/core/users/?page=2&page_size=2&include_groups=false", srv.Token())
	p := doc["pagination"].(map[string]any)
	if status != 200 || p["next"] != 3.0 || p["previous"] != 1.0 || p["count"] != 5.0 || p["current"] != 2.0 ||
		p["total_pages"] != 3.0 || p["start_index"] != 3.0 || p["end_index"] != 4.0 {
		t.Fatalf("%d %v", status, p)
	}
	res := doc["results"].([]any)
	if len(res) != 2 || res[0].(map[string]any)["username"] != "c-user" || res[0].(map[string]any)["groups_obj"] != nil {
		t.Fatalf("%v", res)
	}
	status, doc = get(t, srv, "/api/v3/core/users/?page=3&page_size=2", srv.Token())
	if p := doc["pagination"].(map[string]any); status != 200 || p["next"] != 0.0 || p["end_index"] != 5.0 {
		t.Fatalf("%v", doc)
	}
	for _, q := range []string{"page=4&page_size=2", "page=0", "page=x"} {
		if status, doc := get(t, srv, "/api/v3/core/users/?"+q, srv.Token()); status != 404 || doc["detail"] != "Invalid page." {
			t.Errorf("%s: %d %v", q, status, doc)
		}
	}
	// Bad page_size falls back to 100.
	if _, doc := get(t, srv, "/api/v3/core/groups/?page_size=-3", srv.Token()); doc["pagination"].(map[string]any)["total_pages"] != 1.0 {
		t.Fatalf("%v", doc)
	}
}

func TestGroupShapes(t *testing.T) {
	srv := New(t, tenant())
	_, doc := get(t, srv, "/api/v3/core/groups/?include_users=false", srv.Token())
	res := doc["results"].([]any)
	a, b, c := res[0].(map[string]any), res[1].(map[string]any), res[2].(map[string]any)
	if a["name"] != "A" || a["users_obj"] != nil || len(c["parents"].([]any)) != 2 || len(b["children"].([]any)) != 2 || len(b["users"].([]any)) != 2 {
		t.Fatalf("%v", res)
	}
	_, g := get(t, srv, "/api/v3/core/groups/"+GroupPK("B")+"/", srv.Token())
	if objs := g["users_obj"].([]any); len(objs) != 2 || objs[0].(map[string]any)["uid"] != UID(1) {
		t.Fatalf("%v", g)
	}
	if _, err := NewServer(tenant(), WithLegacyParent()); err == nil || !strings.Contains(err.Error(), `group "C" has 2 parents`) {
		t.Fatalf("legacy with two parents: %v", err)
	}
	tn := tenant()
	tn.Groups = tn.Groups[:2]
	legacy := New(t, tn, WithLegacyParent())
	_, doc = get(t, legacy, "/api/v3/core/groups/", legacy.Token())
	a = doc["results"].([]any)[0].(map[string]any)
	if a["parent"] != GroupPK("B") || a["parent_name"] != "B" || a["parents"] != nil {
		t.Fatalf("%v", a)
	}
}

func TestAuthAndErrors(t *testing.T) {
	srv := New(t, tenant(), WithHiddenUsers(func(pk int) bool { return pk == 1 }))
	for token, want := range map[string]string{"": "Authentication credentials were not provided.", "nope": "Token invalid/expired"} {
		if status, doc := get(t, srv, "/api/v3/core/groups/", token); status != 403 || doc["detail"] != want {
			t.Errorf("%q: %d %v", token, status, doc)
		}
	}
	if status, _ := get(t, srv, "/api/v3/core/nothing/", srv.Token()); status != 404 {
		t.Error(status)
	}
	if status, _ := get(t, srv, "/api/v3/core/users/1/", srv.Token()); status != 404 {
		t.Error("hidden user served", status)
	}
	if _, doc := get(t, srv, "/api/v3/core/users/", srv.Token()); doc["pagination"].(map[string]any)["count"] != 4.0 {
		t.Error(doc)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v3/core/groups/", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 405 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	for _, bad := range []*Tenant{
		{Users: []User{{PK: 1, Username: "a"}, {PK: 1, Username: "b"}}},
		{Groups: []Group{{Name: "g", Users: []int{9}}}},
		{Groups: []Group{{Name: "g", Parents: []string{"nope"}}}},
		{Users: []User{{PK: 1, Username: "a", Type: "robot"}}},
	} {
		if _, err := NewServer(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestUserFilters: the exact filters and groups_by_pk/groups_by_name, as
// authentik's UserFilter has them.
func TestUserFilters(t *testing.T) {
	tn := tenant()
	tn.Users[2].Email = "c@example.com"
	tn.Users[3].Attributes = map[string]any{"employeeId": "42"}
	srv := New(t, tn)
	for _, c := range []struct {
		query string
		want  []any
	}{
		{"username=b-user", []any{2.0}},
		{"email=c%40example.com", []any{3.0}},
		{`attributes=%7B%22employeeId%22%3A%2242%22%7D`, []any{4.0}},
		{"groups_by_pk=" + GroupPK("B"), []any{1.0, 2.0}},
		{"groups_by_name=A&groups_by_name=B", []any{1.0, 2.0}},
		{"groups_by_name=A", nil},
		{"uuid=" + UserUUID(5), []any{5.0}},
		{"username=nobody", nil},
	} {
		status, doc := get(t, srv, "/api/v3/core/users/?"+c.query, srv.Token())
		if status != http.StatusOK {
			t.Fatalf("%s: %d", c.query, status)
		}
		var pks []any
		for _, r := range doc["results"].([]any) {
			pks = append(pks, r.(map[string]any)["pk"])
		}
		if fmt.Sprint(pks) != fmt.Sprint(c.want) {
			t.Errorf("%s: pks %v, want %v", c.query, pks, c.want)
		}
	}
}

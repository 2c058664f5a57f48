package graphtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadTenantFixture(t *testing.T) {
	tn, err := LoadTenant("testdata/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(tn.Users) != 2 || len(tn.Groups) != 2 || len(tn.Devices) != 1 {
		t.Fatalf("loaded %d users, %d groups, %d devices", len(tn.Users), len(tn.Groups), len(tn.Devices))
	}
	adele, guest := tn.Users[0], tn.Users[1]
	if !adele.AccountEnabled || adele.UserType != "Member" {
		t.Errorf("defaults not applied: %+v", adele)
	}
	if guest.AccountEnabled || guest.UserType != "Guest" {
		t.Errorf("explicit values lost: %+v", guest)
	}
	if g := tn.Groups[1]; !slices.Equal(g.GroupTypes, []string{"Unified"}) || !g.MailEnabled {
		t.Errorf("group kind lost: %+v", g)
	}
	// Engineering holds Adele directly and the guest through Engineering Leads;
	// the device is no user.
	got := tn.TransitiveUsers("3b8f5c74-2e5a-4cab-9f2b-4d9e7a0c1d23")
	want := []string{adele.ID, guest.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("TransitiveUsers = %v, want %v", got, want)
	}
}

func TestParseTenantErrors(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown user field":  {"users: [{id: a, upn: x}]", "field upn not found"},
		"unknown group field": {"groups: [{id: g, name: x}]", "field name not found"},
		"dangling member":     {"groups: [{id: g, displayName: G, members: [nobody]}]", `members[0] "nobody" is not the id of any object`},
		"duplicate id":        {"users: [{id: a}]\ngroups: [{id: a, displayName: G}]", `id "a" is already used by users[0]`},
		"missing id":          {"groups: [{displayName: G}]", "groups[0]: id is required"},
		"bad user type":       {"users: [{id: a, userType: Admin}]", "neither Member nor Guest"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTenant([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseTenantJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.json")
	doc := `{"users":[{"id":"u","accountEnabled":false}],"groups":[{"id":"g","displayName":"G","members":["u"]}]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	tn, err := LoadTenant(path)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Users[0].AccountEnabled || tn.Users[0].UserType != "Member" {
		t.Errorf("user = %+v", tn.Users[0])
	}
}

func TestTransitiveUsersCycle(t *testing.T) {
	tn := &Tenant{
		Users: []User{{ID: "u1"}, {ID: "u2"}, {ID: "u3"}},
		Groups: []Group{
			{ID: "a", Members: []string{"u1", "b"}},
			{ID: "b", Members: []string{"u2", "c"}},
			{ID: "c", Members: []string{"a", "u3", "u1"}},
			{ID: "empty"},
		},
	}
	for _, g := range []string{"a", "b", "c"} {
		if got := tn.TransitiveUsers(g); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
			t.Errorf("TransitiveUsers(%s) = %v", g, got)
		}
	}
	if got := tn.TransitiveUsers("empty"); len(got) != 0 {
		t.Errorf("empty group: %v", got)
	}
}

func TestCloneIsDeep(t *testing.T) {
	tn := &Tenant{Groups: []Group{{ID: "g", GroupTypes: []string{"Unified"}, Members: []string{"x"}}}}
	c := tn.Clone()
	c.Groups[0].Members[0] = "y"
	c.Groups[0].GroupTypes[0] = "z"
	if tn.Groups[0].Members[0] != "x" || tn.Groups[0].GroupTypes[0] != "Unified" {
		t.Fatal("Clone shares slices")
	}
}

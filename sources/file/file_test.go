package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleTenantLoads(t *testing.T) {
	s, err := New(filepath.Join("..", "..", "examples", "tenant.yaml")).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) == 0 || len(s.Users) == 0 {
		t.Fatalf("empty snapshot: %+v", s)
	}
}

func TestJSONAndYAMLAgree(t *testing.T) {
	y, err := Parse([]byte("users: [{id: u1, upn: a@x, guest: true, attributes: {k: v}}]\ngroups: [{id: g1, name: G, members: [u1]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse([]byte(`{"users":[{"id":"u1","upn":"a@x","guest":true,"attributes":{"k":"v"}}],"groups":[{"id":"g1","name":"G","members":["u1"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ys, js := y.Snapshot(), j.Snapshot()
	if ys.Users[0].Attributes["k"] != "v" || !js.Users[0].Guest || js.Groups[0].Users[0] != "u1" || ys.Groups[0].Name != js.Groups[0].Name {
		t.Fatalf("%+v %+v", ys, js)
	}
}

func TestErrorsNameTheEntry(t *testing.T) {
	cases := map[string]string{
		"users: [{upn: a@x}]":                           `users[0] (upn "a@x"): id is required`,
		"users: [{id: a}, {id: a}]":                     `users[1]: id "a" is used twice`,
		"groups: [{id: g}]":                             `groups[0] (id "g"): name is required`,
		"groups: [{id: g, name: G, members: [ghost]}]":  `groups[0] ("G"): members[0] "ghost" is not the id of a user`,
		"groups: [{id: g, name: G, subgroups: [nope]}]": `groups[0] ("G"): subgroups[0] "nope" is not the id of a group`,
		"groups: [{id: g, name: G, member: [a]}]":       `field member not found`,
		"groups: [{id: g, name: G}, {id: g, name: H}]":  `groups[1]: id "g" is used twice`,
		"users: [{id: a, disabled: maybe}]":             `cannot unmarshal`,
	}
	for doc, want := range cases {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", doc, err, want)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(p, []byte("groups: [{id: g}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(p).Snapshot(context.Background()); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the file: %v", err)
	}
}

func TestLastRead(t *testing.T) {
	src := New(filepath.Join("..", "..", "examples", "tenant.yaml"))
	if _, err := src.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rd := src.LastRead(); rd.Mode != "full" || rd.Requests != 0 || rd.Retries != 0 {
		t.Fatalf("%+v", rd)
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/authentik/authentiktest"
	gsync "github.com/groupsync/groupsync/sync"
)

// Incus end to end, as docs/incus.md sets it up: authentik's groups into
// Incus's OpenFGA store with examples/incus-authentik.yaml, unchanged but
// for the addresses and secrets the environment gives. The store's model
// is Incus's (fgatest.IncusLikeModel) and stays so; "Incus" answers the
// checks.
func TestIncusWithAuthentik(t *testing.T) {
	const key = "incus-openfga-key"
	srv := fgatest.New(t, fgatest.WithPresharedKeys(key))
	storeID, _ := srv.CreateStore(t, "incus", fgatest.IncusLikeModel)
	// What Incus writes itself: the server, its projects, everyone
	// authenticated.
	incus := []gsync.Tuple{
		{User: "user:*", Relation: "authenticated", Object: "server:incus"},
		{User: "server:incus", Relation: "server", Object: "project:red"},
		{User: "server:incus", Relation: "server", Object: "project:blue"},
	}
	srv.WriteTuples(t, storeID, incus...)

	ak := authentiktest.New(t, &authentiktest.Tenant{
		Users: []authentiktest.User{
			{PK: 1, Username: "alice"}, {PK: 2, Username: "bob"}, {PK: 3, Username: "carol"}, {PK: 4, Username: "dave"},
		},
		Groups: []authentiktest.Group{
			{Name: "incus-team-red", Users: []int{1}},
			{Name: "incus-red-interns", Users: []int{3}, Parents: []string{"incus-team-red"}},
			{Name: "incus-team-blue", Users: []int{2}},
			{Name: "incus-team-green", Users: []int{2}}, // Incus has no project green
			{Name: "incus-admins", Users: []int{4}},
			{Name: "staff", Users: []int{1, 2, 3, 4}}, // not an Incus group
		},
	})
	t.Setenv("GROUPSYNC_SOURCE_AUTHENTIK_URL", ak.URL)
	t.Setenv("GROUPSYNC_SOURCE_AUTHENTIK_TOKEN", ak.Token())
	t.Setenv("GROUPSYNC_OPENFGA_API_URL", srv.URL)
	t.Setenv("GROUPSYNC_OPENFGA_AUTH_API_TOKEN", key)
	t.Setenv("GROUPSYNC_OPENFGA_STORE_ID", storeID)
	cfg, err := filepath.Abs(filepath.Join("..", "..", "examples", "incus-authentik.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logs := "--log-level=warn"
	can := func(user, relation, object string) bool { return srv.Check(t, storeID, user, relation, object) }

	code, out, errOut := cli(t, "check", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "groupsync-registry") {
		t.Fatalf("check: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "model", "write", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "up to date") || !strings.Contains(out, "registry store") {
		t.Fatalf("model write: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "plan", "-c", cfg, logs)
	if code != 2 || !strings.Contains(out, "project:red operator  (grant: rule team-projects)") {
		t.Fatalf("plan: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli(t, "apply", "-c", cfg, logs); code != 0 {
		t.Fatalf("apply: %d\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		user, relation, object string
		want                   bool
	}{
		{"user:alice", "can_create_instances", "project:red", true},
		{"user:carol", "can_create_instances", "project:red", true}, // through incus-red-interns
		{"user:bob", "can_create_instances", "project:red", false},
		{"user:bob", "can_create_instances", "project:blue", true},
		{"user:dave", "can_edit", "project:red", true}, // server admin
		{"user:alice", "can_edit", "server:incus", false},
	} {
		if got := can(c.user, c.relation, c.object); got != c.want {
			t.Errorf("Check(%s %s %s) = %v, want %v", c.user, c.relation, c.object, got, c.want)
		}
	}
	stored := strs(srv.Tuples(t, storeID))
	for _, tu := range incus {
		if !strings.Contains(strings.Join(stored, "\n"), tu.String()) {
			t.Errorf("Incus's %s was deleted", tu)
		}
	}
	for _, s := range stored {
		if strings.Contains(s, "project:green") || strings.Contains(s, "group:staff") {
			t.Errorf("wrote %s", s)
		}
	}
	if code, out, _ = cli(t, "plan", "-c", cfg, logs); code != 0 {
		t.Fatalf("second plan: %d\n%s", code, out)
	}

	// explain: carol reaches team-red through its interns group; Incus
	// lets her create instances in project red.
	code, out, errOut = cli(t, "explain", "user", "carol", "-c", cfg, logs, "--check", "can_create_instances project:red", "--check", "can_edit server:incus")
	for _, want := range []string{
		"user carol", "group:incus-team-red  (incus-team-red): through incus-red-interns",
		"group:incus-red-interns  (incus-red-interns): direct member",
		"user:carol member group:incus-team-red", "In sync: apply would change nothing.",
		"user:carol can_create_instances project:red: true", "user:carol can_edit server:incus: false",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("explain user carol: %d, lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	code, out, errOut = cli(t, "explain", "group", "incus-team-red", "-c", cfg, logs, "-o", "json", "--check", "operator project:red")
	if code != 0 || !strings.Contains(out, `"subgroups": [`) || !strings.Contains(out, `"user": "group:incus-team-red#member"`) || !strings.Contains(out, `"allowed": true`) {
		t.Fatalf("explain group: %d\n%s%s", code, out, errOut)
	}

	// Incus is upgraded and writes its model again; alice leaves the team.
	srv.WriteModel(t, storeID, fgatest.IncusLikeModel)
	if err := ak.Mutate(func(tn *authentiktest.Tenant) { tn.Groups[0].Users = nil }); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut = cli(t, "apply", "-c", cfg, logs); code != 0 {
		t.Fatalf("apply after the change: %d\n%s%s", code, out, errOut)
	}
	if can("user:alice", "can_create_instances", "project:red") || !can("user:carol", "can_create_instances", "project:red") {
		t.Error("alice kept project red, or carol lost it")
	}
	if code, out, _ = cli(t, "plan", "-c", cfg, logs); code != 0 {
		t.Fatalf("plan after the change: %d\n%s", code, out)
	}
}

func strs(ts []gsync.Tuple) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

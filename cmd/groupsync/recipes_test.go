package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/ldap/slapdtest"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// The recipes of docs/recipes.md, each driven through the CLI from its
// file in examples/recipes, unchanged but for what the environment gives:
// addresses, store names and secrets, as an operator's deployment would.
// The authentik + Incus recipe is examples/incus-authentik.yaml, tested by
// TestIncusWithAuthentik; its Entra variant is TestRecipeIncusEntra.

const recipeKey = "recipe-openfga-key"

// recipe is the absolute path of examples/recipes/<name>.
func recipe(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", "recipes", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recipeStore starts OpenFGA with a pre-shared key (the recipes use
// auth.method api_token) and creates the application's store under the
// name the recipe gives, so that openfga.store_name is used as written.
func recipeStore(t *testing.T, name, model string) (*fgatest.Server, string) {
	t.Helper()
	srv := fgatest.New(t, fgatest.WithPresharedKeys(recipeKey))
	storeID, _ := srv.CreateStore(t, name, model)
	t.Setenv("GROUPSYNC_OPENFGA_API_URL", srv.URL)
	t.Setenv("GROUPSYNC_OPENFGA_AUTH_API_TOKEN", recipeKey)
	return srv, storeID
}

// firstRun is the sequence the docs give: check, model write, plan (exit
// 2: changes pending), apply, and a second plan that finds nothing to do.
// It returns the first plan's JSON report.
func firstRun(t *testing.T, cfg string) recipeReport {
	t.Helper()
	logs := "--log-level=warn"
	// Before model write, check may fail on one thing only: the
	// ownership type that model write merges into the store's model.
	code, out, errOut := cli(t, "check", "-c", cfg, logs)
	if code != 0 && (strings.Count(out, "FAIL ") != 1 || !strings.Contains(out, "FAIL  model has the ownership type")) {
		t.Fatalf("check: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "model", "write", "-c", cfg, logs); code != 0 {
		t.Fatalf("model write: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "check", "-c", cfg, logs); code != 0 {
		t.Fatalf("check after model write: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "plan", "-c", cfg, "-o", "json", logs)
	if code != 2 {
		t.Fatalf("plan: %d, want 2\n%s%s", code, out, errOut)
	}
	var rep recipeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	if code, out, errOut := cli(t, "apply", "-c", cfg, logs); code != 0 {
		t.Fatalf("apply: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "plan", "-c", cfg, logs); code != 0 {
		t.Fatalf("plan after apply: %d, want 0\n%s%s", code, out, errOut)
	}
	return rep
}

// recipeReport is the part of the JSON report the recipes assert on.
type recipeReport struct {
	Withheld []struct {
		Op     string      `json:"op"`
		Tuple  gsync.Tuple `json:"tuple"`
		Reason string      `json:"reason"`
	} `json:"withheld"`
	Skipped []struct {
		Kind   string `json:"kind"`
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"skipped"`
}

func (r recipeReport) skipped(name, reason string) bool {
	for _, s := range r.Skipped {
		if s.Name == name && s.Reason == reason {
			return true
		}
	}
	return false
}

// membersOf lists the users of object's relation tuples, sorted.
func membersOf(t *testing.T, srv *fgatest.Server, storeID, relation, object string) []string {
	t.Helper()
	var out []string
	for _, tu := range srv.Tuples(t, storeID) {
		if tu.Relation == relation && tu.Object == object {
			out = append(out, tu.User)
		}
	}
	slices.Sort(out)
	return out
}

func wantMembers(t *testing.T, srv *fgatest.Server, storeID, object string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := membersOf(t, srv, storeID, "member", object); !slices.Equal(got, want) {
		t.Errorf("%s members %q, want %q", object, got, want)
	}
}

// Every file in examples/recipes is a recipe a test below drives, or a
// tenant one of them reads.
func TestRecipeFilesAreTested(t *testing.T) {
	tested := []string{"django-auth-adfs-entra.yaml", "micetro-like.yaml", "micetro-like-tenant.yaml", "openldap-uid.yaml", "incus-entra.yaml"}
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "recipes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.Contains(tested, filepath.Base(f)) {
			t.Errorf("%s has no test in recipes_test.go", f)
		}
	}
	if len(files) != len(tested) {
		t.Errorf("examples/recipes has %d files, the tests know %d", len(files), len(tested))
	}
}

// django-auth-adfs with Entra ID: users keyed by UPN as in the upn claim,
// groups by name, nesting flattened like Entra's transitive groups claim.
// The source is the real Microsoft Graph SDK talking to graphtest; only the
// credential differs from the recipe (auth token instead of client_secret:
// graphtest's token endpoint would need its self-signed certificate
// trusted, which the CLI cannot be told).
func TestRecipeDjangoAuthADFS(t *testing.T) {
	const (
		alice, bob, carol = "00000000-0000-0000-0001-000000000001", "00000000-0000-0000-0001-000000000002", "00000000-0000-0000-0001-000000000003"
		editors, interns  = "00000000-0000-0000-0002-000000000001", "00000000-0000-0000-0002-000000000002"
		staff             = "00000000-0000-0000-0002-000000000003"
	)
	graph := graphtest.New(t, &graphtest.Tenant{
		Users: []graphtest.User{
			{ID: alice, UserPrincipalName: "Alice.Smith@contoso.example", AccountEnabled: true, UserType: "Member"},
			{ID: bob, UserPrincipalName: "bob@contoso.example", AccountEnabled: true, UserType: "Member"},
			{ID: carol, UserPrincipalName: "carol@contoso.example", AccountEnabled: true, UserType: "Member"},
		},
		Groups: []graphtest.Group{
			{ID: editors, DisplayName: "django-editors", SecurityEnabled: true, Members: []string{alice, interns}},
			{ID: interns, DisplayName: "django-interns", SecurityEnabled: true, Members: []string{bob}},
			{ID: staff, DisplayName: "staff", SecurityEnabled: true, Members: []string{alice, bob, carol}},
		},
	})
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_AUTH", "token")
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_TOKEN", graph.Token())
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_GRAPH_ENDPOINT", graph.URL)
	srv, storeID := recipeStore(t, "django-app", fgatest.GroupModel)
	// carol was put into django-editors by hand (or by her last login);
	// Entra says she is not in it.
	srv.WriteTuples(t, storeID, gsync.Tuple{User: "user:carol@contoso.example", Relation: "member", Object: "group:django-editors"})

	firstRun(t, recipe(t, "django-auth-adfs-entra.yaml"))

	// The UPN exactly as Entra holds it, as the upn claim carries it.
	wantMembers(t, srv, storeID, "group:django-editors", "user:Alice.Smith@contoso.example", "user:bob@contoso.example")
	wantMembers(t, srv, storeID, "group:django-interns", "user:bob@contoso.example")
	wantMembers(t, srv, storeID, "group:staff") // not a django-* group
	if !srv.Check(t, storeID, "user:bob@contoso.example", "member", "group:django-editors") {
		t.Error("bob is not an editor through django-interns")
	}
}

// A Micetro-like application: groups matched by name, filled only where
// the application already has them, built-in groups left alone, and a user
// the IdP lists in no group keeps their memberships. The recipe's own
// tenant file is the source.
func TestRecipeMicetroLike(t *testing.T) {
	const model = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type dns_zone
  relations
    define admin: [user, group#member]
`
	srv, storeID := recipeStore(t, "ipam-app", model)
	app := []gsync.Tuple{
		// The application's groups and what it granted them.
		{User: "user:carol@example.com", Relation: "member", Object: "group:dns-admins"},
		{User: "user:dave@example.com", Relation: "member", Object: "group:dns-admins"},
		{User: "group:ipam-operators#member", Relation: "admin", Object: "dns_zone:example.com"}, // a group with no members yet
		{User: "user:root", Relation: "member", Object: "group:Administrators"},                  // built in
	}
	srv.WriteTuples(t, storeID, app...)

	rep := firstRun(t, recipe(t, "micetro-like.yaml"))

	// dave left dns-admins in the IdP; carol is in no group there at all.
	wantMembers(t, srv, storeID, "group:dns-admins", "user:alice@example.com", "user:bob@example.com", "user:carol@example.com")
	wantMembers(t, srv, storeID, "group:ipam-operators", "user:dave@example.com", "user:erin@example.com")
	wantMembers(t, srv, storeID, "group:dhcp-team")
	wantMembers(t, srv, storeID, "group:Administrators", "user:root")
	if !srv.Check(t, storeID, "user:erin@example.com", "admin", "dns_zone:example.com") {
		t.Error("erin is not a zone admin through ipam-operators")
	}
	held := false
	for _, w := range rep.Withheld {
		held = held || (w.Op == "delete" && w.Reason == "user_without_groups" && w.Tuple.User == "user:carol@example.com")
	}
	if !held {
		t.Errorf("carol's delete not withheld as user_without_groups: %+v", rep.Withheld)
	}
	for _, s := range []struct{ name, reason string }{
		{"dhcp-team", "not_in_target"},
		{"Administrators", "excluded"},
		{"All Users", "default_excluded"},
	} {
		if !rep.skipped(s.name, s.reason) {
			t.Errorf("%s not skipped as %s: %+v", s.name, s.reason, rep.Skipped)
		}
	}
	// The lease lives in groupsync's store: the application's has only
	// its own types and the memberships.
	for _, tu := range srv.Tuples(t, storeID) {
		if strings.Contains(tu.String(), "groupsync") {
			t.Errorf("groupsync wrote %s into the application's store", tu)
		}
	}
}

// OpenLDAP keyed by uid: a real slapd, the recipe's settings with the
// server's address, CA and service account from the environment.
func TestRecipeOpenLDAPByUID(t *testing.T) {
	d := &slapdtest.Directory{
		Users: []slapdtest.User{{UID: "alice"}, {UID: "bob"}, {UID: "carol"}},
	}
	d.Groups = []slapdtest.Group{
		{CN: "App Admins", Members: []string{d.UserDN("alice")}},
		{CN: "App Users", Members: []string{d.UserDN("bob"), d.GroupDN("App Admins")}},
	}
	ldap := slapdtest.New(t, slapdtest.WithDirectory(d))
	for k, v := range map[string]string{
		"GROUPSYNC_SOURCE_LDAP_URL":           ldap.LDAPSURL,
		"GROUPSYNC_SOURCE_LDAP_CA_FILE":       ldap.CAFile,
		"GROUPSYNC_SOURCE_LDAP_BIND_DN":       ldap.BindDN,
		"GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD": ldap.BindPassword,
		"GROUPSYNC_SOURCE_LDAP_BASE_DN":       ldap.BaseDN,
	} {
		t.Setenv(k, v)
	}
	srv, storeID := recipeStore(t, "apps", fgatest.GroupModel)

	firstRun(t, recipe(t, "openldap-uid.yaml"))

	wantMembers(t, srv, storeID, "group:app-admins", "user:alice")
	wantMembers(t, srv, storeID, "group:app-users", "group:app-admins#member", "user:bob")
	if !srv.Check(t, storeID, "user:alice", "member", "group:app-users") || srv.Check(t, storeID, "user:carol", "member", "group:app-users") {
		t.Error("alice is not in app-users through app-admins, or carol is")
	}
}

// Incus with Entra ID: UPNs as Incus's users, the grants of the authentik
// setup, groupsync's ownership in a registry store so that Incus's model
// stays Incus's. The source is the real Graph SDK against graphtest, with
// auth token in place of client_secret (see TestRecipeDjangoAuthADFS).
func TestRecipeIncusEntra(t *testing.T) {
	const (
		alice, bob, dave     = "00000000-0000-0000-0001-000000000001", "00000000-0000-0000-0001-000000000002", "00000000-0000-0000-0001-000000000004"
		red, redInterns, adm = "00000000-0000-0000-0002-000000000001", "00000000-0000-0000-0002-000000000002", "00000000-0000-0000-0002-000000000003"
		green, staff         = "00000000-0000-0000-0002-000000000004", "00000000-0000-0000-0002-000000000005"
	)
	graph := graphtest.New(t, &graphtest.Tenant{
		Users: []graphtest.User{
			{ID: alice, UserPrincipalName: "alice@contoso.example", AccountEnabled: true, UserType: "Member"},
			{ID: bob, UserPrincipalName: "bob@contoso.example", AccountEnabled: true, UserType: "Member"},
			{ID: dave, UserPrincipalName: "dave@contoso.example", AccountEnabled: true, UserType: "Member"},
		},
		Groups: []graphtest.Group{
			{ID: red, DisplayName: "incus-team-red", SecurityEnabled: true, Members: []string{alice, redInterns}},
			{ID: redInterns, DisplayName: "incus-red-interns", SecurityEnabled: true, Members: []string{bob}},
			{ID: adm, DisplayName: "incus-admins", SecurityEnabled: true, Members: []string{dave}},
			{ID: green, DisplayName: "incus-team-green", SecurityEnabled: true, Members: []string{bob}}, // Incus has no project green
			{ID: staff, DisplayName: "staff", SecurityEnabled: true, Members: []string{alice, bob, dave}},
		},
	})
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_AUTH", "token")
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_TOKEN", graph.Token())
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_GRAPH_ENDPOINT", graph.URL)
	srv, storeID := recipeStore(t, "incus", fgatest.IncusLikeModel)
	t.Setenv("GROUPSYNC_OPENFGA_STORE_ID", storeID)
	incus := []gsync.Tuple{
		{User: "user:*", Relation: "authenticated", Object: "server:incus"},
		{User: "server:incus", Relation: "server", Object: "project:red"},
		// A grant an Incus admin made by hand, in the relation a rule
		// writes, to a group groupsync does not manage.
		{User: "group:auditors#member", Relation: "operator", Object: "project:red"},
	}
	srv.WriteTuples(t, storeID, incus...)

	firstRun(t, recipe(t, "incus-entra.yaml"))

	wantMembers(t, srv, storeID, "group:incus-team-red", "user:alice@contoso.example", "user:bob@contoso.example")
	wantMembers(t, srv, storeID, "group:incus-admins", "user:dave@contoso.example")
	if got := membersOf(t, srv, storeID, "operator", "project:red"); !slices.Equal(got, []string{"group:auditors#member", "group:incus-team-red#member"}) {
		t.Errorf("project:red operators %q", got)
	}
	if got := membersOf(t, srv, storeID, "admin", "server:incus"); !slices.Equal(got, []string{"group:incus-admins#member"}) {
		t.Errorf("server:incus admins %q", got)
	}
	stored := strings.Join(strs(srv.Tuples(t, storeID)), "\n")
	for _, tu := range incus {
		if !strings.Contains(stored, tu.String()) {
			t.Errorf("Incus's %s was deleted", tu)
		}
	}
	for _, no := range []string{"project:green", "group:staff", "groupsync"} {
		if strings.Contains(stored, no) {
			t.Errorf("wrote %s into Incus's store:\n%s", no, stored)
		}
	}
	if !srv.Check(t, storeID, "user:bob@contoso.example", "can_create_instances", "project:red") ||
		srv.Check(t, storeID, "user:alice@contoso.example", "can_edit", "server:incus") {
		t.Error("bob cannot operate project red through incus-red-interns, or alice administers the server")
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// cli runs groupsync with args and returns its exit code and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// exampleConfig writes a config for the example tenant against srv.
func exampleConfig(t *testing.T, srv *fgatest.Server, extra string) string {
	t.Helper()
	tenant, err := filepath.Abs(filepath.Join("..", "..", "examples", "tenant.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "groupsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(example), "path: tenant.yaml", "path: "+tenant, 1)
	cfg = strings.Replace(cfg, "http://127.0.0.1:18080", srv.URL, 1) + extra
	p := filepath.Join(t.TempDir(), "groupsync.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The acceptance run: model write, plan -o json exits 2 with a
// stable document, apply exits 0, and the next plan exits 0.
func TestPlanApplyPlan(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	logs := "--log-level=warn"

	code, out, errOut := cli(t, "model", "write", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "(created)") {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	code, out, _ = cli(t, "model", "write", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "(found)") {
		t.Fatalf("second model write: %d %s", code, out)
	}

	code, first, errOut := cli(t, "plan", "-c", cfg, "-o", "json", logs)
	if code != 2 {
		t.Fatalf("plan exit %d, want 2: %s", code, errOut)
	}
	_, second, _ := cli(t, "plan", "-c", cfg, "-o", "json", logs)
	if first != second {
		t.Fatal("plan -o json is not stable between runs")
	}
	var doc struct {
		FormatVersion int `json:"format_version"`
		Summary       struct {
			ToAdd    int `json:"to_add"`
			ToDelete int `json:"to_delete"`
		} `json:"summary"`
		Changes []struct {
			Object string   `json:"object"`
			Add    []string `json:"add"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(first), &doc); err != nil {
		t.Fatalf("plan -o json is not JSON: %v\n%s", err, first)
	}
	if doc.FormatVersion != 1 || doc.Summary.ToAdd == 0 || doc.Summary.ToDelete != 0 || doc.Changes[0].Object != "group:design-contractors" {
		t.Fatalf("unexpected plan:\n%s", first)
	}

	code, out, errOut = cli(t, "apply", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "Applied: ") {
		t.Fatalf("apply exit %d:\n%s\n%s", code, out, errOut)
	}
	code, out, _ = cli(t, "plan", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "No changes.") {
		t.Fatalf("plan after apply exit %d:\n%s", code, out)
	}
	code, out, _ = cli(t, "sync", "-c", cfg, "-o", "markdown", logs)
	if code != 0 || !strings.Contains(out, "## groupsync apply") {
		t.Fatalf("sync alias exit %d:\n%s", code, out)
	}
}

func TestErrorsExitOne(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")

	// No store yet: a clear error naming the setting.
	code, _, errOut := cli(t, "plan", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "openfga.store_name") {
		t.Fatalf("missing store: %d %s", code, errOut)
	}
	code, _, errOut = cli(t, "plan", "-c", cfg, "-o", "yaml")
	if code != 1 || !strings.Contains(errOut, "--output") {
		t.Fatalf("bad format: %d %s", code, errOut)
	}
	code, _, errOut = cli(t, "plan", "-c", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 1 || !strings.Contains(errOut, "none.yaml") {
		t.Fatalf("missing config: %d %s", code, errOut)
	}
	code, _, _ = cli(t, "frobnicate")
	if code != 1 {
		t.Fatalf("unknown command exit %d", code)
	}
}

func TestConfigValidate(t *testing.T) {
	srv := fgatest.New(t)
	good := exampleConfig(t, srv, "")
	code, out, _ := cli(t, "config", "validate", "-c", good)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("%d %s", code, out)
	}

	t.Setenv("GROUPSYNC_OPENFGA_AUTH_METHOD", "api_token")
	t.Setenv("GROUPSYNC_OPENFGA_AUTH_API_TOKEN", "do-not-print-me")
	code, out, _ = cli(t, "config", "validate", "--show", "-c", good)
	if code != 0 || strings.Contains(out, "do-not-print-me") || !strings.Contains(out, "api_token: '[redacted]'") {
		t.Fatalf("--show: %d\n%s", code, out)
	}

	bad := exampleConfig(t, srv, "  bogus: 1\n")
	code, _, errOut := cli(t, "config", "validate", "-c", bad)
	if code != 1 || !strings.Contains(errOut, "unknown setting bogus") {
		t.Fatalf("%d %s", code, errOut)
	}
	code, out, _ = cli(t, "config", "validate", "--env")
	if code != 0 || !strings.Contains(out, "GROUPSYNC_OPENFGA_AUTH_API_TOKEN") {
		t.Fatalf("--env: %s", out)
	}
}

func TestModelAndVersion(t *testing.T) {
	code, out, _ := cli(t, "model", "-c", filepath.Join(t.TempDir(), "groupsync.yaml"))
	if code != 1 {
		t.Fatalf("model with a named missing config should fail, got %d %s", code, out)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, _ = cli(t, "model")
	if code != 0 || !strings.Contains(out, "define member: [user, group#member]") {
		t.Fatalf("model: %d %s", code, out)
	}
	code, out, _ = cli(t, "version")
	if code != 0 || !strings.HasPrefix(out, "groupsync ") {
		t.Fatalf("version: %d %s", code, out)
	}
}

// graphConfig writes a config reading tenant from a graphtest server into
// srv's store.
func graphConfig(t *testing.T, graph *graphtest.Server, srv *fgatest.Server, storeID string) string {
	t.Helper()
	cfg := fmt.Sprintf(`source:
  type: msgraph
  msgraph:
    auth: token
    graph_endpoint: %s
openfga:
  api_url: %s
  store_id: %s
mapping:
  group:
    key: id
  nesting: userset
`, graph.URL, srv.URL, storeID)
	p := filepath.Join(t.TempDir(), "groupsync.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_TOKEN", graph.Token())
	return p
}

// The end-to-end run: a full plan from a generated 10,000-user
// Entra tenant to a real OpenFGA.
func TestPlanFromGraphTenant(t *testing.T) {
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 1, Users: 10000, Groups: 1000, MaxDepth: 3, Cycles: 2,
		MembersPerGroup: 20, GuestFraction: 0.05, DisabledFraction: 0.03, Devices: 200, ServicePrincipals: 20, DuplicateNames: 10})
	graph := graphtest.New(t, tenant)
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "graph", fullModel(t))
	cfg := graphConfig(t, graph, srv, storeID)

	code, out, errOut := cli(t, "plan", "-c", cfg, "-o", "json", "--log-level=warn")
	if code != 2 {
		t.Fatalf("plan exit %d: %s", code, errOut)
	}
	var doc struct {
		Summary struct {
			SourceGroups  int `json:"source_groups"`
			SourceUsers   int `json:"source_users"`
			ManagedGroups int `json:"managed_groups"`
			ToAdd         int `json:"to_add"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Summary
	if s.SourceGroups < 900 || s.SourceUsers < 9000 || s.ManagedGroups < 800 || s.ToAdd < 10000 {
		t.Fatalf("summary %+v", s)
	}
	st := graph.Stats()
	// Member reads go 20 to a $batch (19 with the SDK's limit check).
	if st.BatchPosts == 0 || st.BatchItems < int64(s.ManagedGroups) || st.BatchPosts > st.BatchItems/19+20 {
		t.Fatalf("graph requests %+v", st)
	}
	t.Logf("plan: %+v; graph: %d requests (%d batches of %d items)", s, st.Requests, st.BatchPosts, st.BatchItems)

	code, out, _ = cli(t, "check", "-c", cfg)
	if code != 0 || !strings.Contains(out, "ok    Graph GET /groups") || !strings.Contains(out, "ok    model accepts") {
		t.Fatalf("check exit %d:\n%s", code, out)
	}
}

func TestCheckFailsOnAModelThatDoesNotFit(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	srv.CreateStore(t, "groupsync-quickstart", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user]\n")
	code, out, _ := cli(t, "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, "ok    file source") || !strings.Contains(out, "FAIL  model accepts") || !strings.Contains(out, "group#member") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// A Graph page that keeps failing aborts the run before anything is
// deleted, even when the store holds tuples that a partial read would drop.
func TestFailedGraphPageDeletesNothing(t *testing.T) {
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 2, Users: 300, Groups: 60, MaxDepth: 2})
	graph := graphtest.New(t, tenant)
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "graph", fullModel(t))
	cfg := graphConfig(t, graph, srv, storeID)
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatalf("first apply: %s", errOut)
	}
	before := srv.Tuples(t, storeID)

	victim := tenant.Groups[len(tenant.Groups)/2].ID
	graph.SetFaultFunc(func(r *http.Request) *graphtest.Fault {
		if strings.Contains(r.URL.Path, victim+"/members") {
			return graphtest.StatusFault(http.StatusServiceUnavailable)
		}
		return nil
	})
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_MAX_RETRIES", "1")
	code, _, errOut := cli(t, "apply", "-c", cfg, "--log-level=warn")
	if code != 1 || !strings.Contains(errOut, "read source") || !strings.Contains(errOut, victim) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if after := srv.Tuples(t, storeID); len(after) != len(before) {
		t.Fatalf("store changed after a failed read: %d → %d tuples", len(before), len(after))
	}
}

// fullModel is the model groupsync model prints for the default config:
// the mapping's types and the ownership type.
func fullModel(t *testing.T) string {
	t.Helper()
	def := config.Default()
	dsl, err := modelDSL(&def)
	if err != nil {
		t.Fatal(err)
	}
	return dsl
}

func TestGuardAndLeaseExitCodes(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "sync:\n  guards:\n    max_deletes: 2\n")
	if code, _, errOut := cli(t, "model", "write", "-c", cfg); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatal(errOut)
	}
	// The source loses most members: more deletes than the guard allows.
	small := filepath.Join(t.TempDir(), "tenant.yaml")
	if err := os.WriteFile(small, []byte("users: [{id: u1}]\ngroups: [{id: 2a9d0c11-6a6f-4f0e-8b7e-0c3e1f4d2005, name: Sales, members: [u1]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GROUPSYNC_SOURCE_FILE_PATH", small)
	code, out, errOut := cli(t, "plan", "-c", cfg, "--log-level=warn")
	if code != gsync.ExitGuard || !strings.Contains(out, "STOPPED by guard max_deletes") {
		t.Fatalf("plan: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "apply", "-c", cfg, "--log-level=warn")
	if code != gsync.ExitGuard || !strings.Contains(errOut, "--force") || !strings.Contains(out, "STOPPED") {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	// add-only: no deletes, so no guard; the plan has nothing to add.
	if code, out, _ := cli(t, "apply", "-c", cfg, "--policy", "add-only", "-o", "json", "--log-level=warn"); code != 0 || !strings.Contains(out, `"policy": "add-only"`) {
		t.Fatalf("add-only: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--policy", "yolo"); code != 1 || !strings.Contains(errOut, "--policy") {
		t.Fatalf("bad policy: exit %d %s", code, errOut)
	}
	// A run holding the lease makes apply exit 4 and write nothing.
	storeID := strings.TrimSpace(strings.Split(strings.Split(runOut(t, "model", "write", "-c", cfg), "store ")[1], " ")[0])
	lease := gsync.Tuple{User: "groupsync_instance:groupsync", Relation: "lease", Object: "groupsync_instance:groupsync"}
	srv.WriteTuples(t, storeID, lease)
	code, _, errOut = cli(t, "apply", "-c", cfg, "--force", "--log-level=warn")
	if code != gsync.ExitBusy || !strings.Contains(errOut, "holds the lease") {
		t.Fatalf("busy: exit %d %s", code, errOut)
	}
	srv.DeleteTuples(t, storeID, lease)
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--force", "--log-level=warn"); code != 0 {
		t.Fatalf("forced apply: %s", errOut)
	}
}

func runOut(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return out
}

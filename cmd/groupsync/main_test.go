package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
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

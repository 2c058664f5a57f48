package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

func TestInit(t *testing.T) {
	srv := fgatest.New(t)
	dir := t.TempDir()
	// Every source's starter file parses and validates once its secrets
	// are in the environment.
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_CLIENT_SECRET", "s3cret-value")
	t.Setenv("GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD", "s3cret-value")
	t.Setenv("GROUPSYNC_SOURCE_AUTHENTIK_TOKEN", "s3cret-value")
	for _, src := range starterSources {
		body, ok := starterConfig(src, srv.URL, "groupsync")
		if !ok {
			t.Fatalf("no starter for %s", src)
		}
		p := filepath.Join(dir, src+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(p); err != nil {
			t.Errorf("%s starter: %v", src, err)
		}
	}

	// The file source end to end: init writes it and check passes once the
	// store exists.
	cfg := filepath.Join(dir, "groupsync.yaml")
	tenant, _ := filepath.Abs(filepath.Join("..", "..", "examples", "tenant.yaml"))
	if err := os.Symlink(tenant, filepath.Join(dir, "tenant.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "init", "-c", cfg, "--source", "file", "--openfga-url", srv.URL, "--log-level=warn")
	if code != 1 || !strings.Contains(out, "wrote "+cfg) || !strings.Contains(out, "FAIL") {
		t.Fatalf("init before the store exists: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "model", "write", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "check", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatalf("check of the starter: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "init", "-c", cfg, "--source", "file", "--openfga-url", srv.URL); code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("init over an existing file: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "init", "-c", cfg, "--source", "okta", "--openfga-url", srv.URL); code != 1 || !strings.Contains(errOut, "msgraph, ldap, authentik, file") {
		t.Fatalf("unknown source: %d %s", code, errOut)
	}
	// plan without a config file says how to get one.
	if code, _, errOut := cli(t, "plan", "-c", filepath.Join(dir, "missing.yaml")); code != 1 || !strings.Contains(errOut, "groupsync init") {
		t.Fatalf("plan without a config: %d %s", code, errOut)
	}
}

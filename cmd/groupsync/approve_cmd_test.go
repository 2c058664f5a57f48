package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

// writeApproveTenant writes a file tenant: "staff" with the first staff
// of six users, "eng" with three.
func writeApproveTenant(t *testing.T, path string, staff int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&b, "  - {id: u%d}\n", i)
	}
	ids := func(n int) string {
		var out []string
		for i := 1; i <= n; i++ {
			out = append(out, fmt.Sprintf("u%d", i))
		}
		return strings.Join(out, ", ")
	}
	fmt.Fprintf(&b, "groups:\n  - {id: g1, name: staff, members: [%s]}\n  - {id: g2, name: eng, members: [%s]}\n", ids(staff), ids(3))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The operator's path through the real CLI: `groupsync daemon` quarantines
// a plan that trips max_deletes; `groupsync approve` shows it, refuses an
// id that is not the quarantined plan's, and applies exactly it.
func TestApproveCommand(t *testing.T) {
	const token = "trigger-token-0123456789"
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "approve", fgatest.GroupModel)
	dir := t.TempDir()
	tenant := filepath.Join(dir, "tenant.yaml")
	writeApproveTenant(t, tenant, 6)
	t.Setenv("GROUPSYNC_DAEMON_TRIGGER_TOKEN", token)
	cfg := filepath.Join(dir, "groupsync.yaml")
	doc := fmt.Sprintf(`source: {type: file, file: {path: %q}}
openfga: {api_url: %q, store_id: %q}
mapping: {group: {key: name}}
sync: {ownership: {mode: authoritative}, lease: {enabled: false}, guards: {max_deletes: 2}}
daemon: {schedule: "@hourly", listen: "127.0.0.1:0", trigger: {enabled: true}, status: {enabled: true}}
`, tenant, srv.URL, storeID)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base, exit, stderr := startDaemon(t, cfg, io.Discard)
	waitFor(t, base+"/readyz", 200, "last successful run ended")

	// staff loses four of six members: over max_deletes.
	writeApproveTenant(t, tenant, 2)
	req, _ := http.NewRequest(http.MethodPost, base+"/run?wait=true", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The run trips its guard (HTTP 500 with the outcome): what matters
	// here is that the daemon took the request and ran.
	var started struct {
		Started bool `json:"started"`
	}
	err = json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if err != nil || !started.Started {
		t.Fatalf("POST /run: %s, started %v (%v)", resp.Status, started.Started, err)
	}
	stderr.logLine(t, "plan quarantined: a guard stopped the run and nothing was written; it awaits approval of exactly this plan "+
		"(GET /status shows it), or clears once a run no longer trips")

	code, out, errOut := cli(t, "approve", "--daemon", base)
	m := regexp.MustCompile(`Quarantined plan ([0-9a-f]+)`).FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "STOPPED by guard max_deletes") || !strings.Contains(out, "--plan-id "+m[1]) {
		t.Fatalf("approve (show): %d\n%s\n%s", code, out, errOut)
	}
	id := m[1]
	if code, out, errOut := cli(t, "approve", "--daemon", base, "--plan-id", "0123456789abcdef"); code != 1 || !strings.Contains(errOut, "not 0123456789abcdef") {
		t.Fatalf("approve of another id: %d\n%s\n%s", code, out, errOut)
	}
	if n := len(srv.Tuples(t, storeID)); n != 9 {
		t.Fatalf("%d tuples before approval, want 9", n)
	}
	planFile := filepath.Join(dir, "plan.json")
	code, out, errOut = cli(t, "approve", "--daemon", base, "--plan-id", id, "--out", planFile)
	if code != 0 || !strings.Contains(out, "Approved and applied plan "+id+": 0 added, 4 deleted") {
		t.Fatalf("approve: %d\n%s\n%s", code, out, errOut)
	}
	if n := len(srv.Tuples(t, storeID)); n != 5 {
		t.Fatalf("%d tuples after approval, want 5", n)
	}
	if _, err := os.Stat(planFile); err != nil {
		t.Fatalf("--out: %v", err)
	}
	// Nothing is quarantined any more; a wrong token is refused.
	if code, _, errOut := cli(t, "approve", "--daemon", base); code != 1 || !strings.Contains(errOut, "no quarantined plan") {
		t.Fatalf("approve with nothing quarantined: %d %s", code, errOut)
	}
	t.Setenv("GROUPSYNC_DAEMON_TRIGGER_TOKEN", "wrong-token-0123456789")
	if code, _, errOut := cli(t, "approve", "--daemon", base); code != 1 || !strings.Contains(errOut, "401") {
		t.Fatalf("approve with a wrong token: %d %s", code, errOut)
	}

	stopDaemon(t, exit, stderr)
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the trigger token was logged")
	}
}

// In owned mode, with the lease: a first run that trips max_adds would
// also claim the groups; approving its plan claims and adds exactly that,
// under the lease, and leaves the store in sync.
func TestApproveCommandClaimsUnderTheLease(t *testing.T) {
	const token = "trigger-token-0123456789"
	srv := fgatest.New(t)
	dir := t.TempDir()
	tenant := filepath.Join(dir, "tenant.yaml")
	writeApproveTenant(t, tenant, 6)
	t.Setenv("GROUPSYNC_DAEMON_TRIGGER_TOKEN", token)
	cfg := filepath.Join(dir, "groupsync.yaml")
	doc := fmt.Sprintf(`source: {type: file, file: {path: %q}}
openfga: {api_url: %q, store_name: approve-owned}
mapping: {group: {key: name}}
sync: {guards: {max_adds: 5}}
daemon: {schedule: "@hourly", listen: "127.0.0.1:0", trigger: {enabled: true}}
`, tenant, srv.URL)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "model", "write", "-c", cfg); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	base, exit, stderr := startDaemon(t, cfg, io.Discard)
	line := stderr.logLine(t, "plan quarantined: a guard stopped the run and nothing was written; it awaits approval of exactly this plan "+
		"(GET /status shows it), or clears once a run no longer trips")
	id, _ := line["plan_id"].(string)
	if line["guard"] != "max_adds" || id == "" || !strings.Contains(fmt.Sprint(line["approve"]), "--plan-id "+id) {
		t.Fatalf("the quarantine line: %v", line)
	}
	if code, out, errOut := cli(t, "approve", "--daemon", base, "--plan-id", id); code != 0 || !strings.Contains(out, "9 added, 0 deleted") {
		t.Fatalf("approve: %d\n%s\n%s", code, out, errOut)
	}
	stopDaemon(t, exit, stderr)
	// The groups are claimed and the memberships written: in sync.
	if code, out, errOut := cli(t, "plan", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatalf("plan after the approval: %d\n%s\n%s", code, out, errOut)
	}
}

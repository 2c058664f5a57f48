package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

const (
	aliceID = "7f3c1a52-0b1e-4c8e-9d1a-5b2f9e8a1001"
	carolID = "7f3c1a52-0b1e-4c8e-9d1a-5b2f9e8a1003"
)

// plan|apply --user/--group run a targeted reconcile with the full run's
// output formats, guards, lease and exit codes.
func TestTargetedRunFlags(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "sync:\n  guards:\n    max_deletes: 1\n")
	logs := "--log-level=warn"
	runOut(t, "model", "write", "-c", cfg)
	storeID := strings.TrimSpace(strings.Split(strings.Split(runOut(t, "model", "write", "-c", cfg), "store ")[1], " ")[0])
	runOut(t, "apply", "-c", cfg, logs)

	// alice leaves Engineering (All Company is a default exclude); Sales
	// is carol alone now.
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "tenant.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tenant := strings.Replace(string(example), "members: ["+aliceID+"]", "members: []", 1)
	tenant = strings.Replace(tenant, "members: ["+aliceID+", ", "members: [", 1)
	tenant = strings.Replace(tenant, "members: [7f3c1a52-0b1e-4c8e-9d1a-5b2f9e8a1005, 7f3c1a52-0b1e-4c8e-9d1a-5b2f9e8a1008]", "members: ["+carolID+"]", 1)
	path := filepath.Join(t.TempDir(), "tenant.yaml")
	if err := os.WriteFile(path, []byte(tenant), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GROUPSYNC_SOURCE_FILE_PATH", path)

	// Two deletes in Sales: over max_deletes, for plan and apply alike.
	code, out, errOut := cli(t, "plan", "-c", cfg, "--group", "Sales", logs)
	if code != gsync.ExitGuard || !strings.Contains(out, "Targeted: groups group:sales.") || !strings.Contains(out, "STOPPED by guard max_deletes") {
		t.Fatalf("plan --group: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--group", "Sales", logs); code != gsync.ExitGuard {
		t.Fatalf("apply --group: exit %d %s", code, errOut)
	}
	// alice's one delete passes.
	if code, out, errOut := cli(t, "plan", "-c", cfg, "--user", aliceID, logs); code != gsync.ExitPending || !strings.Contains(out, "Targeted: users user:"+aliceID+".") {
		t.Fatalf("plan --user: exit %d\n%s\n%s", code, out, errOut)
	}

	code, out, errOut = cli(t, "plan", "-c", cfg, "--group", "Sales", "--user", "user:"+aliceID, "--force", "-o", "json", logs)
	if code != gsync.ExitPending {
		t.Fatalf("plan --group --user: exit %d\n%s", code, errOut)
	}
	var doc struct {
		Slice struct {
			UserIDs []string `json:"user_ids"`
			Objects []string `json:"objects"`
		} `json:"slice"`
		Changes []struct {
			Object string   `json:"object"`
			Add    []string `json:"add"`
			Delete []string `json:"delete"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var changes []string
	for _, c := range doc.Changes {
		for _, u := range c.Add {
			changes = append(changes, "+"+u+" "+c.Object)
		}
		for _, u := range c.Delete {
			changes = append(changes, "-"+u+" "+c.Object)
		}
	}
	want := []string{"-user:" + aliceID + " group:engineering", "+user:" + carolID + " group:sales",
		"-user:7f3c1a52-0b1e-4c8e-9d1a-5b2f9e8a1005 group:sales", "-user:7f3c1a52-0b1e-4c8e-9d1a-5b2f9e8a1008 group:sales"}
	slices.Sort(changes)
	slices.Sort(want)
	if !slices.Equal(changes, want) || !slices.Equal(doc.Slice.Objects, []string{"group:sales"}) || !slices.Equal(doc.Slice.UserIDs, []string{"user:" + aliceID}) {
		t.Fatalf("changes %q, want %q; slice %+v", changes, want, doc.Slice)
	}

	// Another run holds the lease: a targeted apply waits for nobody.
	lease := gsync.Tuple{User: "groupsync_instance:groupsync", Relation: "lease", Object: "groupsync_instance:groupsync"}
	srv.WriteTuples(t, storeID, lease)
	if code, _, errOut := cli(t, "apply", "-c", cfg, "--group", "Sales", logs); code != gsync.ExitBusy {
		t.Fatalf("busy: exit %d %s", code, errOut)
	}
	srv.DeleteTuples(t, storeID, lease)

	runOut(t, "apply", "-c", cfg, "--group", "Sales", "--user", aliceID, "--force", logs)
	if code, out, _ := cli(t, "plan", "-c", cfg, "--group", "2a9d0c11-6a6f-4f0e-8b7e-0c3e1f4d2005", "--user", aliceID, logs); code != gsync.ExitOK {
		t.Fatalf("targeted plan after apply: exit %d\n%s", code, out)
	}
	// The targeted run did all there was to do.
	if code, out, _ := cli(t, "plan", "-c", cfg, logs); code != gsync.ExitOK {
		t.Fatalf("full plan after the targeted apply: exit %d\n%s", code, out)
	}
}

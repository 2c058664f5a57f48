package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// A run killed while holding the lease blocks the next one (exit 4) until
// the lease expires; `lease status` shows it and `lease release --force`
// frees it, refusing without --force while it has not expired.
func TestLeaseStatusAndRelease(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	logs := "--log-level=warn"
	if code, out, errOut := cli(t, "model", "write", "-c", cfg, logs); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	code, out, errOut := cli(t, "lease", "status", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, ": free") {
		t.Fatalf("status of a free lease: %d %s %s", code, out, errOut)
	}
	// A run dies holding the lease: its tuple stays.
	storeID := srv.StoreID(t, "groupsync-quickstart")
	self := "groupsync_instance:groupsync"
	srv.WriteTuples(t, storeID, gsync.Tuple{User: self, Relation: openfga.RelationLease, Object: self})
	if code, _, errOut := cli(t, "apply", "-c", cfg, logs); code != 4 {
		t.Fatalf("apply with the lease held: %d %s", code, errOut)
	}
	code, out, _ = cli(t, "lease", "status", "-c", cfg, "-o", "json", logs)
	var st openfga.LeaseState
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Held || st.Expired || st.Lease != self {
		t.Fatalf("status of a held lease: %d %s", code, out)
	}
	if code, _, errOut := cli(t, "lease", "release", "-c", cfg, logs); code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("release without --force: %d %s", code, errOut)
	}
	if code, out, errOut := cli(t, "lease", "release", "--force", "-c", cfg, logs); code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("release --force: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "apply", "-c", cfg, logs); code != 0 {
		t.Fatalf("apply after the release: %d %s", code, errOut)
	}
	if code, out, _ := cli(t, "lease", "release", "-c", cfg, logs); code != 0 || !strings.Contains(out, "nothing to release") {
		t.Fatalf("release of a free lease: %d %s", code, out)
	}
}

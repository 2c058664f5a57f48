package main

import (
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// ownership list shows what the registry records; release stops managing
// (tuples stay); adopt shows the plan, claims with --yes, and refuses a
// group another instance manages.
func TestOwnershipCommands(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	logs := "--log-level=warn"
	for _, args := range [][]string{{"model", "write"}, {"apply"}} {
		if code, out, errOut := cli(t, append(args, "-c", cfg, logs)...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errOut)
		}
	}
	code, out, _ := cli(t, "ownership", "list", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "group:sales") {
		t.Fatalf("list: %d %s", code, out)
	}
	storeID := srv.StoreID(t, "groupsync-quickstart")
	before := len(srv.Tuples(t, storeID))
	if code, out, errOut := cli(t, "ownership", "release", "sales", "-c", cfg, logs); code != 0 || !strings.Contains(out, "released group:sales") {
		t.Fatalf("release: %d %s %s", code, out, errOut)
	}
	if _, out, _ := cli(t, "ownership", "list", "-c", cfg, logs); strings.Contains(out, "group:sales") {
		t.Fatalf("still owned after release: %s", out)
	}
	if n := len(srv.Tuples(t, storeID)); n != before-1 { // the marker only
		t.Fatalf("release removed %d tuples, want only the marker", before-n)
	}
	code, out, errOut := cli(t, "ownership", "adopt", "Sales", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "Nothing claimed") {
		t.Fatalf("adopt without --yes: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "ownership", "adopt", "Sales", "--yes", "-c", cfg, logs); code != 0 || !strings.Contains(out, "Adopted group:sales") {
		t.Fatalf("adopt --yes: %d %s %s", code, out, errOut)
	}
	if _, out, _ := cli(t, "ownership", "list", "-o", "json", "-c", cfg, logs); !strings.Contains(out, `"group:sales"`) {
		t.Fatalf("not owned after adopt: %s", out)
	}
	// Another instance's group is refused.
	srv.WriteTuples(t, storeID, gsync.Tuple{User: "group:engineering", Relation: openfga.RelationManages, Object: "groupsync_instance:ldap"})
	if code, _, errOut := cli(t, "ownership", "adopt", "Engineering", "--yes", "-c", cfg, logs); code != 1 || !strings.Contains(errOut, "groupsync instance ldap") {
		t.Fatalf("adopt of another instance's group: %d %s", code, errOut)
	}
}

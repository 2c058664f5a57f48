package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// plan --out saves a plan; apply FILE applies exactly it, and refuses,
// writing nothing, once OpenFGA (or the source) changed under it.
func TestSavedPlan(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	logs := "--log-level=warn"
	dir := t.TempDir()
	if code, out, errOut := cli(t, "model", "write", "-c", cfg, logs); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	first := filepath.Join(dir, "first.plan")
	if code, out, errOut := cli(t, "plan", "-c", cfg, "--out", first, logs); code != 2 || !strings.Contains(out, "to add") {
		t.Fatalf("plan --out: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "apply", first, "-c", cfg, logs); code != 0 {
		t.Fatalf("apply the saved plan: %d %s %s", code, out, errOut)
	}
	if code, _, _ := cli(t, "plan", "-c", cfg, logs); code != 0 {
		t.Fatal("the saved plan did not converge the store")
	}
	storeID := srv.StoreID(t, "groupsync-quickstart")
	tuples := func() []string {
		var out []string
		for _, tu := range srv.Tuples(t, storeID) {
			out = append(out, tu.String())
		}
		return out
	}
	// Someone deletes a membership; the plan to restore it is saved.
	all := srv.Tuples(t, storeID)
	var members []gsync.Tuple
	for _, tu := range all {
		if tu.Relation == "member" {
			members = append(members, tu)
		}
	}
	srv.DeleteTuples(t, storeID, members[0])
	second := filepath.Join(dir, "second.plan")
	if code, _, errOut := cli(t, "plan", "-c", cfg, "--out", second, logs); code != 2 {
		t.Fatalf("plan --out: %d %s", code, errOut)
	}
	// Before it is applied, another membership goes: the plan is stale.
	srv.DeleteTuples(t, storeID, members[1])
	before := tuples()
	code, _, errOut := cli(t, "apply", second, "-c", cfg, logs)
	if code != 1 || !strings.Contains(errOut, "stale") || !slices.Equal(tuples(), before) {
		t.Fatalf("apply of a stale plan: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "apply", filepath.Join(dir, "missing.plan"), "-c", cfg, logs); code != 1 || !strings.Contains(errOut, "missing.plan") {
		t.Fatalf("apply of a missing file: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "apply", cfg, "-c", cfg, logs); code != 1 || !strings.Contains(errOut, "not a plan") {
		t.Fatalf("apply of a file that is no plan: %d %s", code, errOut)
	}
}

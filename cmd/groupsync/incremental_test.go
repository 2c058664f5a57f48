package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

// One-shot runs with the incremental state in a file: the first apply
// reads OpenFGA in full, the next reads no group and says so; plan keeps
// nothing.
func TestIncrementalStateFileAcrossRuns(t *testing.T) {
	srv := fgatest.New(t)
	state := filepath.Join(t.TempDir(), "openfga-state")
	cfg := exampleConfig(t, srv, fmt.Sprintf("\nsync:\n  incremental: {state: {type: file, path: %s}}\n", state))
	logs := "--log-level=warn"
	if code, out, errOut := cli(t, "model", "write", "-c", cfg, logs); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	code, out, errOut := cli(t, "apply", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "OpenFGA read: full, ") || !strings.Contains(out, "(full because no incremental state yet)") {
		t.Fatalf("first apply %d:\n%s\n%s", code, out, errOut)
	}
	code, out, _ = cli(t, "apply", "-c", cfg, logs)
	if code != 0 || !strings.Contains(out, "OpenFGA read: incremental, 0 groups read, ") {
		t.Fatalf("second apply %d:\n%s", code, out)
	}
	code, out, _ = cli(t, "plan", "-c", cfg, "-o", "json", logs)
	if code != 0 || !strings.Contains(out, `"target_read": {`) || !strings.Contains(out, `"mode": "incremental"`) {
		t.Fatalf("plan %d:\n%s", code, out)
	}
	// Without a state that outlives the process, one-shot runs say nothing
	// of it: a memory state would die with them.
	plain := exampleConfig(t, srv, "")
	if _, out, _ := cli(t, "plan", "-c", plain, logs); strings.Contains(out, "OpenFGA read:") {
		t.Fatalf("a one-shot run with a memory state reported an incremental read:\n%s", out)
	}
}

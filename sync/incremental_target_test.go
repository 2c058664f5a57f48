package sync_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/state"
	gsync "github.com/groupsync/groupsync/sync"
)

// incremental turns an owned env's runs incremental, their state in
// memory, with the lease on (as deployed).
func incremental(e *env) *env {
	e.settings.Incremental.Enabled = true
	e.settings.Incremental.ReadBack = 20000
	e.settings.Lease.Enabled = true
	e.targetState = state.NewMemory()
	return e
}

// counted runs once and returns the report with the Read and ReadChanges
// requests it sent.
func (e *env) counted(apply bool) (rep *gsync.Report, reads, changes int) {
	e.t.Helper()
	e.srv.ResetCounts()
	rep = e.run(apply)
	return rep, e.srv.ReadRequests(), e.srv.Requests(fgatest.ReadChanges)
}

// leaseReads are the reads of taking, checking and giving back the lease.
const leaseReads = 3

func targetMode(rep *gsync.Report) string {
	if rep.TargetRead == nil {
		return "(none)"
	}
	return rep.TargetRead.Mode
}

// After a first sync, a run where nothing changed on either side reads
// no group from OpenFGA: a handful of changelog reads replace a read per
// group, and it plans nothing.
func TestIncrementalNoChangeReadsNoGroup(t *testing.T) {
	e := incremental(owned(newEnv(t, manyGroups(300), nil), "inc"))
	first, _, _ := e.counted(true)
	if targetMode(first) != "full" || first.TargetRead.Reason != "no incremental state yet" {
		t.Fatalf("first run: %+v", first.TargetRead)
	}
	rep, reads, changes := e.counted(true)
	if targetMode(rep) != "incremental" || rep.TargetRead.GroupsKnown != 300 || rep.TargetRead.GroupsRead != 0 {
		t.Fatalf("second run: %+v", rep.TargetRead)
	}
	if rep.Pending() || rep.Result.Added+rep.Result.Deleted != 0 {
		t.Fatalf("no-change run changed something: %+v", rep.Summary)
	}
	// The lease's own reads (take, check, give back) are the only reads.
	if reads > leaseReads || changes > 4 {
		t.Fatalf("no-change incremental run sent %d reads and %d changelog reads; want at most %d (the lease's) and 4", reads, changes, leaseReads)
	}
	if rep.Summary.ExistingTuples != 300 {
		t.Fatalf("managed tuples counted %d, want 300 (known groups count as existing, for the percent guards)", rep.Summary.ExistingTuples)
	}
	e.assertConverged()
}

// Tuples another writer deleted from or added to owned groups are found
// through the changelog and repaired by the next incremental run; its
// changes in groups groupsync does not own are left alone.
func TestIncrementalRepairsOtherWritersChanges(t *testing.T) {
	e := incremental(owned(newEnv(t, manyGroups(50), nil), "inc"))
	e.run(true)
	e.run(true)
	var gone []gsync.Tuple
	for i := range 10 {
		gone = append(gone, tup(fmt.Sprintf("user:u%04d", i), fmt.Sprintf("group:g%04d", i)))
	}
	e.srv.DeleteTuples(t, e.storeID, gone...)
	stray := tup("user:mallory", "group:g0020")
	foreign := tup("user:mallory", "group:not-managed")
	e.srv.WriteTuples(t, e.storeID, stray, foreign)

	rep, _, _ := e.counted(true)
	if targetMode(rep) != "incremental" || rep.TargetRead.GroupsRead != 11 || rep.TargetRead.GroupsKnown != 39 {
		t.Fatalf("run after another writer: %+v", rep.TargetRead)
	}
	if rep.Result.Added != 10 || rep.Result.Deleted != 1 {
		t.Fatalf("repaired %d adds and %d deletes, want 10 and 1", rep.Result.Added, rep.Result.Deleted)
	}
	if !contains(e.stored(), foreign.String()) {
		t.Fatal("a tuple in a group groupsync does not own was deleted")
	}
	// The repair's own writes are told from another writer's: the next run
	// reads nothing again.
	rep, reads, _ := e.counted(true)
	if targetMode(rep) != "incremental" || reads > leaseReads || rep.Pending() {
		t.Fatalf("run after the repair: %+v, %d reads", rep.TargetRead, reads)
	}
	e.assertConverged(foreign.String())
}

// A change in the source reads no group: the state holds what the
// changed groups have in OpenFGA (nobody else changed them), so the run
// writes the change without reading.
func TestIncrementalSourceChangeReadsNoGroup(t *testing.T) {
	snap := manyGroups(40)
	e := incremental(owned(newEnv(t, snap, nil), "inc"))
	e.run(true)
	snap.Groups[3].Users = append(snap.Groups[3].Users, "u0007")
	snap.Groups = snap.Groups[:39] // g0039 leaves the source: released, its tuple deleted
	snap.Groups = append(snap.Groups, gsync.Group{ID: "new", Name: "brand-new", Users: []string{"u0001"}})

	rep, _, _ := e.counted(true)
	if targetMode(rep) != "incremental" || rep.TargetRead.GroupsRead != 0 || rep.TargetRead.GroupsFromState != 2 || rep.TargetRead.GroupsKnown != 38 {
		t.Fatalf("run: %+v", rep.TargetRead)
	}
	if rep.Result.Added != 2 || rep.Result.Deleted != 1 || len(rep.Ownership.Releases) != 1 || len(rep.Ownership.Claims) != 1 {
		t.Fatalf("result %+v, ownership %+v", rep.Result, rep.Ownership)
	}
	e.assertConverged()
	if rep, reads, _ := e.counted(true); targetMode(rep) != "incremental" || reads > leaseReads {
		t.Fatalf("next run: %+v, %d reads", rep.TargetRead, reads)
	}
}

// Whatever makes the kept knowledge doubtful reads in full and says why;
// the run after that is incremental again.
func TestIncrementalFallsBackToFull(t *testing.T) {
	cases := []struct {
		name   string
		breakE func(e *env)
		reason string
	}{
		{"damaged state", func(e *env) { e.targetState.Save(context.Background(), []byte("not a state")) }, "is not usable"},
		{"model replaced", func(e *env) { e.srv.WriteModel(e.t, e.storeID, wideModel) }, "model changed"},
		{"ownership changed by hand", func(e *env) {
			e.srv.DeleteTuples(e.t, e.storeID, gsync.Tuple{User: "group:g0001", Relation: "manages", Object: "groupsync_instance:inc"})
		}, ""},
		{"periodic full read", func(e *env) { e.settings.Incremental.FullEvery = 1 }, "sync.incremental.full_every"},
		{"big write", func(e *env) {
			e.settings.Incremental.ReadBack = 3
			e.src.snap.Groups[0].Users = append(e.src.snap.Groups[0].Users, "u0002", "u0003", "u0004", "u0005")
			e.run(true)
			e.settings.Incremental.ReadBack = 20000
		}, "more than sync.incremental.read_back"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := incremental(owned(newEnv(t, manyGroups(20), nil), "inc"))
			e.run(true)
			c.breakE(e)
			rep := e.run(true)
			if c.reason == "" {
				// The registry's changelog replays the change: g0001 is no
				// longer owned, so the run claims it again (reading it).
				if targetMode(rep) != "incremental" || len(rep.Ownership.Claims) != 1 {
					t.Fatalf("run: %+v, claims %v", rep.TargetRead, rep.Ownership.Claims)
				}
			} else if targetMode(rep) != "full" || !strings.Contains(rep.TargetRead.Reason, c.reason) {
				t.Fatalf("run: %+v, want full because %q", rep.TargetRead, c.reason)
			}
			e.settings.Incremental.FullEvery = 0
			if rep := e.run(true); targetMode(rep) != "incremental" {
				t.Fatalf("the run after: %+v", rep.TargetRead)
			}
			e.assertConverged()
		})
	}
}

// A plan, a guard trip and a failed apply keep nothing: the next run
// still reads from the last applied state, and sees what happened since.
func TestIncrementalKeepsNothingWithoutASuccessfulApply(t *testing.T) {
	e := incremental(owned(newEnv(t, manyGroups(20), nil), "inc"))
	e.run(true)
	e.srv.DeleteTuples(t, e.storeID, tup("user:u0004", "group:g0004"))
	if rep := e.run(false); !rep.Pending() || rep.TargetRead.GroupsRead != 1 {
		t.Fatalf("plan: %+v", rep.TargetRead)
	}
	if rep := e.run(true); rep.Result.Added != 1 {
		t.Fatalf("the apply after the plan did not repair: %+v", rep.Result)
	}
	e.assertConverged()
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// Another writer's change made while a run writes (after the run read the
// group, before it kept its state) is told from the run's own writes when
// they are read back, so the next run reads that group and repairs it.
func TestIncrementalSeesOtherWritersDuringTheRun(t *testing.T) {
	snap := manyGroups(20)
	e := incremental(owned(newEnv(t, snap, nil), "inc"))
	e.run(true)
	snap.Groups[0].Users = append(snap.Groups[0].Users, "u0005") // the next run writes
	victim := tup("user:u0009", "group:g0009")
	var once bool
	e.srv.SetFault(func(r fgatest.Request) *fgatest.Fault {
		if r.Endpoint == fgatest.Write && !once && strings.Contains(string(r.Body), "u0005") {
			once = true
			e.srv.DeleteTuples(t, e.storeID, victim) // behind the run's back, mid-apply
		}
		return nil
	})
	rep := e.run(true)
	e.srv.SetFault(nil)
	if !once || rep.Result.Added != 1 {
		t.Fatalf("the run wrote %+v (interfered: %v)", rep.Result, once)
	}
	rep, _, _ = e.counted(true)
	if targetMode(rep) != "incremental" || rep.TargetRead.GroupsRead != 1 || rep.Result.Added != 1 {
		t.Fatalf("the run after: %+v, %+v; want g0009 read and repaired", rep.TargetRead, rep.Result)
	}
	e.assertConverged()
}

// A changelog position OpenFGA rejects (a token of another store, a
// damaged one) reads in full and says why; nothing is written from it.
func TestIncrementalRejectedPositionReadsInFull(t *testing.T) {
	e := incremental(owned(newEnv(t, manyGroups(10), nil), "inc"))
	e.run(true)
	ctx := context.Background()
	data, err := e.targetState.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.NewDecoder(zr).Decode(&st); err != nil {
		t.Fatal(err)
	}
	st["positions"].(map[string]any)["group"] = map[string]any{"token": "bm90IGEgdG9rZW4="}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	json.NewEncoder(zw).Encode(st)
	zw.Close()
	if err := e.targetState.Save(ctx, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	e.srv.DeleteTuples(t, e.storeID, tup("user:u0003", "group:g0003"))
	rep := e.run(true)
	if targetMode(rep) != "full" || !strings.Contains(rep.TargetRead.Reason, "could not be read from the kept position") || rep.Result.Added != 1 {
		t.Fatalf("run: %+v, %+v", rep.TargetRead, rep.Result)
	}
	e.assertConverged()
}

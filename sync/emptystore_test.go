package sync_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// manyGroups is a source of n groups g0000…, each with one user.
func manyGroups(n int) *gsync.Snapshot {
	snap := &gsync.Snapshot{}
	for i := range n {
		id := fmt.Sprintf("u%04d", i)
		snap.Users = append(snap.Users, gsync.User{ID: id})
		snap.Groups = append(snap.Groups, gsync.Group{ID: fmt.Sprintf("id%04d", i), Name: fmt.Sprintf("g%04d", i), Users: []string{id}})
	}
	return snap
}

// firstSyncReads runs an owned-mode first sync and returns its Read and
// ReadChanges requests; the store then holds exactly what is desired.
func firstSyncReads(t *testing.T, e *env) (reads, changes int) {
	t.Helper()
	e.srv.ResetCounts()
	rep := e.run(true)
	reads, changes = e.srv.ReadRequests(), e.srv.Requests(fgatest.ReadChanges)
	if len(rep.Ownership.Claims) != len(e.src.snap.Groups) {
		t.Fatalf("claimed %d of %d groups", len(rep.Ownership.Claims), len(e.src.snap.Groups))
	}
	claimed := setOfStrings(rep.Ownership.Claims)
	var got []string
	for _, s := range e.inScope() {
		if claimed[s[strings.LastIndexByte(s, ' ')+1:]] {
			got = append(got, s)
		}
	}
	if want := e.desired(); !slices.Equal(got, want) {
		t.Fatalf("after the first sync the claimed groups hold %d tuples, want %d", len(got), len(want))
	}
	if r := e.run(true); r.Pending() {
		t.Fatalf("not converged: %+v", r.Summary)
	}
	return reads, changes
}

// A first owned-mode sync into an empty store reads a constant number of
// times, whatever the number of groups: the changelog shows that no group
// tuple and no ownership marker was ever written. Without the lease the
// changelog cannot prove it is up to date (no fresh write of the run's
// own shows in it), so each group's owners are read: one read a group.
func TestFirstOwnedSyncIntoEmptyStoreReadsConstant(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			var counts [][2]int
			for _, n := range []int{10, 300} {
				e := owned(newEnv(t, manyGroups(n), nil), "entra")
				if lease {
					e.settings.Lease = config.Lease{Enabled: true, TTL: config.Duration(time.Minute)}
				}
				reads, changes := firstSyncReads(t, e)
				t.Logf("%d groups: %d reads, %d ReadChanges", n, reads, changes)
				counts = append(counts, [2]int{reads, changes})
			}
			if !lease {
				if counts[0][0] != 10+1 || counts[1][0] != 300+1 {
					t.Fatalf("without the lease: %v, want a read per group plus the registry's", counts)
				}
				return
			}
			if counts[0] != counts[1] || counts[1][0] > 4 || counts[1][1] > 3 {
				t.Fatalf("reads (Read, ReadChanges) grow with the groups or are too many: %v", counts)
			}
		})
	}
}

// Tuples written by hand on groups about to be claimed are read and
// replaced, as before: the changelog shows group tuples, so every group to
// claim is read.
func TestFirstOwnedSyncReadsHandWrittenGroups(t *testing.T) {
	const n = 50
	e := owned(newEnv(t, manyGroups(n), nil), "entra")
	hand := []gsync.Tuple{tup("user:zed", "group:g0003"), tup("user:zed", "group:manual")}
	e.srv.WriteTuples(t, e.storeID, hand...)
	reads, _ := firstSyncReads(t, e)
	if reads < n {
		t.Fatalf("%d reads for %d groups to claim that may hold tuples", reads, n)
	}
	stored := e.stored()
	if slices.Contains(stored, "user:zed member group:g0003") {
		t.Error("a hand-written tuple on a claimed group was kept")
	}
	if !slices.Contains(stored, "user:zed member group:manual") {
		t.Error("an unclaimed group's tuple was deleted")
	}
}

// A type whose tuples were all deleted has changes in the changelog: the
// groups are read as before, and so are the ownership markers.
func TestWrittenThenDeletedStillReads(t *testing.T) {
	const n = 50
	e := owned(newEnv(t, manyGroups(n), nil), "entra")
	gone := []gsync.Tuple{tup("user:zed", "group:g0001"), {User: "group:g0002", Relation: "manages", Object: "groupsync_instance:ldap"}}
	e.srv.WriteTuples(t, e.storeID, gone...)
	e.srv.DeleteTuples(t, e.storeID, gone...)
	reads, _ := firstSyncReads(t, e)
	// n owner reads and n group reads, plus the registry's own.
	if reads < 2*n {
		t.Fatalf("%d reads for %d groups after tuples of both types were deleted", reads, n)
	}
}

// Another instance's marker makes Owners read each group, and the group
// it owns is left alone, even with no group tuple ever written.
func TestOtherInstancesMarkersAreRead(t *testing.T) {
	const n = 20
	e := owned(newEnv(t, manyGroups(n), nil), "entra")
	e.srv.WriteTuples(t, e.storeID, gsync.Tuple{User: "group:g0005", Relation: "manages", Object: "groupsync_instance:ldap"})
	e.srv.ResetCounts()
	rep := e.run(true)
	if len(rep.Ownership.Claims) != n-1 || slices.Contains(rep.Ownership.Claims, "group:g0005") {
		t.Fatalf("claims %q", rep.Ownership.Claims)
	}
	if reads := e.srv.ReadRequests(); reads < n {
		t.Fatalf("%d reads: owners not read", reads)
	}
	if slices.Contains(e.stored(), "user:u0005 member group:g0005") {
		t.Fatal("wrote into another instance's group")
	}
}

// When the changelog cannot be read, the run reads as before.
func TestFirstOwnedSyncChangelogFailing(t *testing.T) {
	const n = 30
	e := owned(newEnv(t, manyGroups(n), nil), "entra")
	e.srv.WriteTuples(t, e.storeID, tup("user:zed", "group:g0003"))
	e.srv.SetFault(fgatest.FailRange(fgatest.ReadChanges, 1, 0, fgatest.Fault{Status: http.StatusForbidden}))
	reads, _ := firstSyncReads(t, e)
	if reads < 2*n {
		t.Fatalf("%d reads for %d groups with the changelog failing", reads, n)
	}
	if slices.Contains(e.stored(), "user:zed member group:g0003") {
		t.Error("a hand-written tuple on a claimed group was kept")
	}
}

package openfga_test

import (
	"net/http"
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

func neverWritten(t *testing.T, s *openfga.Sink, typ string) bool {
	t.Helper()
	never, err := s.NeverWritten(t.Context(), typ)
	if err != nil {
		t.Fatalf("NeverWritten(%s): %v", typ, err)
	}
	return never
}

// NeverWritten answers from one ReadChanges request of one change, also on
// a long changelog, and a type whose tuples were all deleted was written.
func TestNeverWritten(t *testing.T) {
	srv, storeID, cfg := setup(t)
	s := newSink(t, cfg)
	srv.ResetCounts()
	if !neverWritten(t, s, "group") {
		t.Fatal("an empty store has group tuples")
	}
	if n := srv.Requests(fgatest.ReadChanges); n != 1 || srv.ReadRequests() != 0 {
		t.Fatalf("%d ReadChanges, %d Reads", n, srv.ReadRequests())
	}
	long := users("group:big", 250) // 3 writes, 250 changes
	srv.WriteTuples(t, storeID, long...)
	srv.DeleteTuples(t, storeID, long...)
	srv.ResetCounts()
	if neverWritten(t, s, "group") {
		t.Fatal("group tuples were written and deleted, yet never written")
	}
	if !neverWritten(t, s, "folder") {
		t.Fatal("the type filter does not filter")
	}
	if n := srv.Requests(fgatest.ReadChanges); n != 2 {
		t.Fatalf("%d ReadChanges for two answers", n)
	}
}

// An error is an error, never a "never written".
func TestNeverWrittenError(t *testing.T) {
	srv, _, cfg := setup(t)
	s := newSink(t, cfg)
	srv.SetFault(fgatest.FailRange(fgatest.ReadChanges, 1, 0, fgatest.Fault{Status: http.StatusForbidden}))
	if never, err := s.NeverWritten(t.Context(), "group"); err == nil || never {
		t.Fatalf("got %v, %v", never, err)
	}
}

// Owners reads no object when no marker was ever written (lease changes
// aside), and every object otherwise, or when the changelog cannot be read.
func TestOwnersSkipsReadsOnlyWhenNoMarkerWasWritten(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "groups", openfga.DefaultModel+"\n"+openfga.OwnershipDSL("groupsync_instance", "group"))
	s := newSink(t, testConfig(srv, storeID))
	o := config.Ownership{Type: "groupsync_instance", Instance: "entra"}
	reg := openfga.NewRegistry(s, o, "group")
	objects := []string{"group:a", "group:b", "group:c", "group:d"}
	owners := func(wantReads int) map[string][]string {
		t.Helper()
		srv.ResetCounts()
		got, err := reg.Owners(t.Context(), objects)
		if err != nil {
			t.Fatal(err)
		}
		if n := srv.ReadRequests(); n != wantReads {
			t.Fatalf("Owners sent %d reads, want %d", n, wantReads)
		}
		return got
	}
	// Nothing in the changelog proves it is current (no fresh lease of
	// this instance's): the owners are read.
	if got := owners(len(objects)); len(got) != 0 {
		t.Fatalf("owners in an empty store: %v", got)
	}
	lease := gsync.Tuple{User: "groupsync_instance:ldap", Relation: openfga.RelationLease, Object: "groupsync_instance:ldap"}
	srv.WriteTuples(t, storeID, lease)
	srv.DeleteTuples(t, storeID, lease)
	srv.WriteTuples(t, storeID, lease)
	if got := owners(len(objects)); len(got) != 0 {
		t.Fatalf("owners with another instance's leases only: %v", got)
	}
	// This instance's own lease, just written (a run holding it): the
	// changelog is current, and holds no marker: nothing to read.
	own := gsync.Tuple{User: "groupsync_instance:entra", Relation: openfga.RelationLease, Object: "groupsync_instance:entra"}
	srv.WriteTuples(t, storeID, own)
	if got := owners(0); len(got) != 0 {
		t.Fatalf("owners with leases only: %v", got)
	}
	marker := gsync.Tuple{User: "group:b", Relation: openfga.RelationManages, Object: "groupsync_instance:ldap"}
	srv.WriteTuples(t, storeID, marker)
	if got := owners(len(objects)); len(got["group:b"]) != 1 || len(got) != 1 {
		t.Fatalf("owners: %v", got)
	}
	srv.DeleteTuples(t, storeID, marker)
	if got := owners(len(objects)); len(got) != 0 {
		t.Fatalf("owners after a release: %v", got)
	}
	// A changelog that cannot be read: read the objects.
	srv2 := fgatest.New(t)
	storeID2, _ := srv2.CreateStore(t, "groups", openfga.DefaultModel+"\n"+openfga.OwnershipDSL("groupsync_instance", "group"))
	srv2.WriteTuples(t, storeID2, marker)
	reg2 := openfga.NewRegistry(newSink(t, testConfig(srv2, storeID2)), o, "group")
	srv2.SetFault(fgatest.FailRange(fgatest.ReadChanges, 1, 0, fgatest.Fault{Status: http.StatusInternalServerError}))
	got, err := reg2.Owners(t.Context(), objects)
	if err != nil || len(got["group:b"]) != 1 {
		t.Fatalf("owners with the changelog failing: %v, %v", got, err)
	}
}

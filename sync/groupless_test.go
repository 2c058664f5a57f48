package sync_test

import (
	"testing"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// With mapping.user.hold_without_groups, a user the source lists in no
// group keeps their memberships (withheld, reported); a user still in some
// group loses the ones they left.
func TestHoldWithoutGroups(t *testing.T) {
	snap := teams()
	snap.Groups[1].Users = nil // bob: in no group at all now
	e := newAppEnv(t, snap, fgatest.IncusLikeModel)
	e.cfg.Sync.Ownership.Mode = config.OwnershipAuthoritative
	e.cfg.Mapping.User.HoldWithoutGroups = true
	e.srv.WriteTuples(t, e.storeID,
		gsync.Tuple{User: "user:bob", Relation: "member", Object: "group:team-blue"},
		gsync.Tuple{User: "user:dave", Relation: "member", Object: "group:team-blue"}, // dave is still in ops
	)
	rep := e.mustRun(true)
	if !e.has("user:bob member group:team-blue") || e.has("user:dave member group:team-blue") {
		t.Fatal("bob's membership was deleted, or dave's was kept")
	}
	held := false
	for _, w := range rep.Withheld {
		held = held || (w.Reason == gsync.ReasonNoGroups && w.Tuple.User == "user:bob")
	}
	if !held {
		t.Errorf("withheld %+v", rep.Withheld)
	}
	// Off (the default): bob is removed like anyone else.
	e.cfg.Mapping.User.HoldWithoutGroups = false
	e.mustRun(true)
	if e.has("user:bob member group:team-blue") {
		t.Error("without the option bob kept his membership")
	}
}

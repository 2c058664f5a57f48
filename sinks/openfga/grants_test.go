package openfga_test

import (
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// appModel is shaped like the model Incus writes into its store
// (lxc/incus, internal/server/auth/driver_openfga_model.openfga): groups
// hold only users, and grants on projects and the server accept a group's
// members. Reduced to the types these tests need.
const appModel = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type server
  relations
    define admin: [user, group#member]
    define viewer: [user, group#member] or admin
type project
  relations
    define server: [server]
    define operator: [user, group#member] or admin from server
    define viewer: [user, group#member] or operator or viewer from server
`

func TestGrantsFindsGroupsReferredToByGrants(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "app", appModel)
	srv.WriteTuples(t, storeID,
		gsync.Tuple{User: "group:team-red#member", Relation: "viewer", Object: "project:red"},
		gsync.Tuple{User: "group:team-red#member", Relation: "operator", Object: "project:red-dev"},
		gsync.Tuple{User: "group:ops#member", Relation: "admin", Object: "server:incus"},
		gsync.Tuple{User: "user:alice", Relation: "member", Object: "group:staff"},
		gsync.Tuple{User: "user:bob", Relation: "viewer", Object: "project:blue"},
	)
	s := newSink(t, testConfig(srv, storeID))
	srv.ResetCounts()
	got, err := s.Grants(t.Context(), []string{"group:ops", "group:staff", "group:team-blue", "group:team-red"}, "member")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]gsync.Tuple{
		"group:ops": {{User: "group:ops#member", Relation: "admin", Object: "server:incus"}},
		"group:team-red": {
			{User: "group:team-red#member", Relation: "viewer", Object: "project:red"},
			{User: "group:team-red#member", Relation: "operator", Object: "project:red-dev"},
		},
	}
	gsync.SortTuples(want["group:team-red"])
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for obj, ts := range want {
		wantTuples(t, got[obj], ts)
	}
	// One read per group and granting type (project, server): bounded by
	// the desired groups, never a scan of the store.
	if n := srv.ReadRequests(); n != 4*2 {
		t.Errorf("%d read requests, want 8", n)
	}
}

func TestGrantsWithoutGrantingTypesReadsNothing(t *testing.T) {
	srv, _, cfg := setup(t) // openfga.DefaultModel: only group.member, nesting
	s := newSink(t, cfg)
	srv.ResetCounts()
	got, err := s.Grants(t.Context(), []string{"group:a", "group:b"}, "member")
	if err != nil || len(got) != 0 || srv.ReadRequests() != 0 {
		t.Fatalf("got %v, err %v, %d reads; the default model has no grants", got, err, srv.ReadRequests())
	}
}

func TestReadByUsersKeepsTheScope(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "app", appModel)
	srv.WriteTuples(t, storeID,
		gsync.Tuple{User: "group:team-red#member", Relation: "viewer", Object: "project:red"},
		gsync.Tuple{User: "group:team-red#member", Relation: "operator", Object: "project:red"}, // another relation
		gsync.Tuple{User: "group:team-blue#member", Relation: "viewer", Object: "project:blue"}, // another group
		gsync.Tuple{User: "user:bob", Relation: "viewer", Object: "project:red"},                // a user
		gsync.Tuple{User: "group:team-red#member", Relation: "viewer", Object: "server:incus"},  // another type
	)
	s := newSink(t, testConfig(srv, storeID))
	got, err := s.Read(t.Context(), gsync.Scope{ObjectType: "project", Relation: "viewer", UserTypes: []string{"group#member"},
		Users: []string{"group:team-red#member", "group:team-green#member"}})
	if err != nil {
		t.Fatal(err)
	}
	wantTuples(t, got, []gsync.Tuple{{User: "group:team-red#member", Relation: "viewer", Object: "project:red"}})
}

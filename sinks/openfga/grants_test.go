package openfga_test

import (
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

func TestGrantsFindsGroupsReferredToByGrants(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "app", fgatest.IncusLikeModel)
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
	// One read per group and granting type (instance, project, server):
	// bounded by the groups asked about, never a scan of the store.
	if n := srv.ReadRequests(); n != 4*3 {
		t.Errorf("%d read requests, want 12", n)
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
	storeID, _ := srv.CreateStore(t, "app", fgatest.IncusLikeModel)
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

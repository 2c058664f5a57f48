package file

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	gsync "github.com/groupsync/groupsync/sync"
)

const sliceTenant = `users:
  - {id: u1, upn: alice@example.com}
  - {id: u2, upn: bob@example.com}
  - {id: u3, upn: carol@example.com}
  - {id: u4, upn: dave@example.com}
groups:
  - {id: g1, name: eng, members: [u1], subgroups: [g2, g4]}
  - {id: g2, name: platform, members: [u2, u3], subgroups: [g3]}
  - {id: g3, name: infra, members: [u3], subgroups: [g2]}   # a cycle with platform
  - {id: g4, name: sales, members: [u4]}
  - {id: g5, name: all, members: [u1, u2, u3, u4], subgroups: [g1]}
`

// SnapshotSlice follows the contract of gsync.SliceSource: a user's slice
// is the groups holding them (through nesting and cycles too), listing
// only them; a group's slice is the group and everything below it, in
// full.
func TestSnapshotSlice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenant.yaml")
	if err := os.WriteFile(path, []byte(sliceTenant), 0o600); err != nil {
		t.Fatal(err)
	}
	src := New(path)
	cases := []struct {
		name  string
		slice gsync.Slice
		want  *gsync.Snapshot
	}{
		{"user by upn", gsync.Slice{Users: []string{"carol@example.com"}}, &gsync.Snapshot{
			Users: []gsync.User{{ID: "u3", UPN: "carol@example.com"}},
			Groups: []gsync.Group{
				{ID: "g1", Name: "eng", Groups: []string{"g2"}},
				{ID: "g2", Name: "platform", Users: []string{"u3"}, Groups: []string{"g3"}},
				{ID: "g3", Name: "infra", Users: []string{"u3"}, Groups: []string{"g2"}},
				{ID: "g5", Name: "all", Users: []string{"u3"}, Groups: []string{"g1"}},
			}}},
		{"user by id", gsync.Slice{Users: []string{"u4"}}, &gsync.Snapshot{
			Users: []gsync.User{{ID: "u4", UPN: "dave@example.com"}},
			Groups: []gsync.Group{
				{ID: "g1", Name: "eng", Groups: []string{"g4"}},
				{ID: "g4", Name: "sales", Users: []string{"u4"}},
				{ID: "g5", Name: "all", Users: []string{"u4"}, Groups: []string{"g1"}},
			}}},
		{"group by name", gsync.Slice{Groups: []string{"platform"}}, &gsync.Snapshot{
			Users: []gsync.User{{ID: "u2", UPN: "bob@example.com"}, {ID: "u3", UPN: "carol@example.com"}},
			Groups: []gsync.Group{
				{ID: "g2", Name: "platform", Users: []string{"u2", "u3"}, Groups: []string{"g3"}},
				{ID: "g3", Name: "infra", Users: []string{"u3"}, Groups: []string{"g2"}},
			}}},
		{"group by id", gsync.Slice{Groups: []string{"g4"}}, &gsync.Snapshot{
			Users:  []gsync.User{{ID: "u4", UPN: "dave@example.com"}},
			Groups: []gsync.Group{{ID: "g4", Name: "sales", Users: []string{"u4"}}}}},
		{"unknown", gsync.Slice{Users: []string{"zed"}, Groups: []string{"nope"}}, &gsync.Snapshot{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := src.SnapshotSlice(context.Background(), c.slice)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
	// A broken file is an error, as for Snapshot: never an empty slice.
	if err := os.WriteFile(path, []byte("groups: [{id: g1}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.SnapshotSlice(context.Background(), gsync.Slice{Groups: []string{"g1"}}); err == nil {
		t.Fatal("a broken file gave a slice")
	}
}

package file

import (
	"os"
	"testing"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// FuzzParse: any bytes give a tenant whose snapshot maps cleanly, or an
// error; never a panic, and never a tenant that fails its own validation
// (a member naming nobody would otherwise reach the mapping as a partial
// snapshot).
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile("../../examples/tenant.yaml"); err == nil {
		f.Add(example)
	}
	f.Add([]byte(`{"users": [{"id": "a"}], "groups": [{"id": "1", "name": "x", "members": ["a"]}]}`))
	f.Add([]byte("users:\n  - id: a\ngroups:\n  - id: g\n    name: team red\n    members: [a, b]\n"))
	f.Add([]byte("groups:\n  - id: 1\n    name: a\n    subgroups: [1]\n"))
	f.Add([]byte("users: [{id: a}, {id: a}]\n"))
	f.Add([]byte("users: !!map {}\n"))
	f.Add([]byte("\x00\xff: ["))
	mapper, err := gsync.NewMapper(config.Default().Mapping)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ten, err := Parse(data)
		if err != nil {
			return
		}
		if err := ten.Validate(); err != nil {
			t.Fatalf("Parse returned a tenant that does not validate: %v", err)
		}
		if _, err := mapper.Map(ten.Snapshot()); err != nil {
			t.Fatalf("a valid tenant does not map: %v", err)
		}
	})
}

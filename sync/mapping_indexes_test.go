package sync_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// byIndex is snap with every group's users given as positions in
// snap.Users, as a source with a compact state gives them.
func byIndex(snap *gsync.Snapshot) *gsync.Snapshot {
	pos := map[string]int32{}
	for i, u := range snap.Users {
		pos[u.ID] = int32(i)
	}
	c := *snap
	c.Groups = make([]gsync.Group, len(snap.Groups))
	for i, g := range snap.Groups {
		for _, id := range g.Users {
			g.UserIndexes = append(g.UserIndexes, pos[id])
		}
		g.Users = nil
		c.Groups[i] = g
	}
	return &c
}

// TestMappingByIndexEqualsByID: a snapshot whose groups list users by
// position maps to exactly what the same snapshot by id maps to, in every
// nesting mode and with the user settings that read users.
func TestMappingByIndexEqualsByID(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 2))
	edits := []func(*config.Mapping){
		func(m *config.Mapping) {},
		func(m *config.Mapping) { m.Nesting = "direct" },
		func(m *config.Mapping) { m.Nesting = "userset" },
		func(m *config.Mapping) { m.User.Key, m.User.SkipDisabled = "upn", true },
		func(m *config.Mapping) { m.User.HoldWithoutGroups = true },
	}
	for i := range 200 {
		snap := randomTenant(r)
		if r.IntN(4) == 0 { // two users with one UPN: a held key
			snap.Users[len(snap.Users)-1].UPN = snap.Users[0].UPN
		}
		if r.IntN(3) == 0 { // users not sorted by id
			r.Shuffle(len(snap.Users), func(a, b int) { snap.Users[a], snap.Users[b] = snap.Users[b], snap.Users[a] })
		}
		cfg := config.Default().Mapping
		edits[i%len(edits)](&cfg)
		m, err := gsync.NewMapper(cfg)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.Map(snap)
		if err != nil {
			t.Fatal(err)
		}
		indexed := byIndex(snap)
		got, err := m.Map(indexed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Members.Tuples(), want.Members.Tuples()) || !reflect.DeepEqual(got.Skipped, want.Skipped) ||
			!reflect.DeepEqual(got.Groups, want.Groups) || !reflect.DeepEqual(got.HeldUsers, want.HeldUsers) ||
			!reflect.DeepEqual(got.GrouplessUsers, want.GrouplessUsers) || got.UserLabels.Len() != want.UserLabels.Len() {
			t.Fatalf("case %d (%+v): by index\n%+v\nby id\n%+v", i, cfg, got, want)
		}
		if back := indexed.WithUserIDs(); !reflect.DeepEqual(back.Groups, snap.Groups) {
			t.Fatalf("case %d: WithUserIDs gives %+v, want %+v", i, back.Groups, snap.Groups)
		}
	}
}

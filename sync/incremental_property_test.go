package sync_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	gsync "github.com/groupsync/groupsync/sync"
)

// Across random sequences of changes on both sides (the IdP's members and
// groups; another writer adding and deleting tuples in owned and unowned
// groups), incremental runs leave exactly the store that full runs leave.
func TestIncrementalEquivalentToFull(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			src := &snapshotSource{manyGroups(12)}
			full := owned(newEnv(t, src.snap, nil), "eq")
			full.src = src
			inc := incremental(owned(newEnv(t, src.snap, nil), "eq"))
			inc.src = src
			incrementalRuns := 0
			for step := range 25 {
				changeSource(rng, src.snap)
				others := otherWriter(rng, full)
				full.srv.WriteTuples(t, full.storeID, others.add...)
				inc.srv.WriteTuples(t, inc.storeID, others.add...)
				full.srv.DeleteTuples(t, full.storeID, others.del...)
				inc.srv.DeleteTuples(t, inc.storeID, others.del...)
				if rng.IntN(5) == 0 {
					inc.run(false) // a plan keeps nothing
				}
				full.run(true)
				rep := inc.run(true)
				if targetMode(rep) == "incremental" {
					incrementalRuns++
				}
				if a, b := inc.stored(), full.stored(); !slices.Equal(a, b) {
					t.Fatalf("step %d (%s, others %+v): incremental and full runs left different stores:\n incremental %q\n full        %q",
						step, rep.TargetRead.Mode, others, a, b)
				}
			}
			if incrementalRuns < 15 {
				t.Fatalf("only %d of 25 runs were incremental", incrementalRuns)
			}
		})
	}
}

// changeSource moves members, adds and removes groups, at random.
func changeSource(rng *rand.Rand, snap *gsync.Snapshot) {
	for range rng.IntN(3) {
		if len(snap.Groups) == 0 {
			break
		}
		g := &snap.Groups[rng.IntN(len(snap.Groups))]
		switch u := snap.Users[rng.IntN(len(snap.Users))].ID; rng.IntN(4) {
		case 0, 1:
			if !slices.Contains(g.Users, u) {
				g.Users = append(g.Users, u)
			}
		case 2:
			g.Users = slices.DeleteFunc(g.Users, func(s string) bool { return s == u })
		case 3:
			g.Users = nil
		}
	}
	switch rng.IntN(8) {
	case 0:
		n := len(snap.Groups)
		snap.Groups = append(snap.Groups, gsync.Group{ID: fmt.Sprintf("new%d-%d", n, rng.IntN(1000)), Name: fmt.Sprintf("new%04d", rng.IntN(50)),
			Users: []string{snap.Users[rng.IntN(len(snap.Users))].ID}})
	case 1:
		if len(snap.Groups) > 1 {
			i := rng.IntN(len(snap.Groups))
			snap.Groups = slices.Delete(snap.Groups, i, i+1)
		}
	}
}

type writes struct{ add, del []gsync.Tuple }

// otherWriter picks tuples another writer adds and deletes: in groups
// groupsync owns and in one it does not, among tuples that exist and not.
func otherWriter(rng *rand.Rand, e *env) writes {
	var w writes
	stored := e.srv.Tuples(e.t, e.storeID)
	var members []gsync.Tuple
	for _, t := range stored {
		if t.Relation == "member" {
			members = append(members, t)
		}
	}
	for range rng.IntN(3) {
		switch rng.IntN(3) {
		case 0:
			if len(members) > 0 {
				t := members[rng.IntN(len(members))]
				if !slices.Contains(w.del, t) {
					w.del = append(w.del, t)
				}
			}
		case 1:
			t := tup(fmt.Sprintf("user:intruder%d", rng.IntN(3)), fmt.Sprintf("group:g%04d", rng.IntN(12)))
			if !slices.Contains(stored, t) && !slices.Contains(w.add, t) {
				w.add = append(w.add, t)
			}
		case 2:
			t := tup(fmt.Sprintf("user:app%d", rng.IntN(3)), "group:not-managed")
			if !slices.Contains(stored, t) && !slices.Contains(w.add, t) {
				w.add = append(w.add, t)
			}
		}
	}
	return w
}

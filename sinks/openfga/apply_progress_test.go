package openfga_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga"
	gsync "github.com/groupsync/groupsync/sync"
)

// A ctx from WithWriteProgress hears each phase start and each chunk end,
// in order, ending at the phase's total; a plain ctx hears nothing.
func TestApplyReportsProgress(t *testing.T) {
	_, _, cfg := setup(t)
	s := newSink(t, cfg)
	if _, err := s.Apply(t.Context(), gsync.Changes{Adds: users("group:quiet", 3)}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	ctx := openfga.WithWriteProgress(t.Context(), func(p openfga.WriteProgress) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %d/%d", p.Op, p.Done, p.Total))
	})
	res, err := s.Apply(ctx, gsync.Changes{Adds: users("group:eng", 250), Deletes: users("group:quiet", 3)})
	if err != nil || res.Added != 250 || res.Deleted != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	// The chunks of 100, 100 and 50 finish in any order; Done only grows.
	adds := got[:len(got)-2]
	if len(adds) != 4 || adds[0] != "add 0/250" || adds[3] != "add 250/250" {
		t.Fatalf("add reports %q", adds)
	}
	for _, mid := range adds[1:3] {
		if !slices.Contains([]string{"add 50/250", "add 100/250", "add 150/250", "add 200/250"}, mid) {
			t.Fatalf("add reports %q", adds)
		}
	}
	if d := got[len(got)-2:]; d[0] != "delete 0/3" || d[1] != "delete 3/3" {
		t.Fatalf("delete reports %q", d)
	}
}

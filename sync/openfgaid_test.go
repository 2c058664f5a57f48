package sync_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// TestIDRulesMatchOpenFGA writes the borderline objects and users to a real
// OpenFGA v1.22.1 and expects groupsync to accept exactly what it accepts,
// except where groupsync refuses more by documented choice (Unicode
// whitespace, see sync/openfgaid.go).
func TestIDRulesMatchOpenFGA(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "ids", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user]\n")
	cfg := config.Default().OpenFGA
	cfg.APIURL, cfg.StoreID, cfg.RetryMinWait = srv.URL, storeID, config.Duration(time.Millisecond)
	sink, err := openfga.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const alice = "user:alice"
	for _, tc := range []struct {
		name         string
		object, user string
		openfga      bool // OpenFGA accepts the tuple
		groupsync    bool // groupsync's mapping lets it through
	}{
		{"object of 256 characters with umlauts (506 bytes)", "group:" + strings.Repeat("ä", 250), alice, true, true},
		{"object of 257 characters", "group:" + strings.Repeat("ä", 251), alice, false, false},
		{"object of 256 ASCII characters", "group:" + strings.Repeat("a", 250), alice, true, true},
		{"user of 512 bytes", "group:eng", "user:" + strings.Repeat("a", 507), true, true},
		{"user of 513 bytes", "group:eng", "user:" + strings.Repeat("a", 508), false, false},
		{"user of 259 characters but 513 bytes", "group:eng", "user:" + strings.Repeat("ä", 254), false, false},
		{"space", "group:team red", alice, false, false},
		{"tab", "group:team\tred", alice, false, false},
		{"control character", "group:team\x07red", alice, false, false},
		{"hash", "group:team#red", alice, false, false},
		{"second colon", "group:team:red", alice, false, false},
		{"no-break space U+00A0 (OpenFGA accepts; groupsync refuses)", "group:team\u00a0red", alice, true, false},
		{"ideographic space U+3000 (OpenFGA accepts; groupsync refuses)", "group:team\u3000red", alice, true, false},
		{"non-ASCII letters", "group:équipe-rouge-東京", "user:zoë", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tu := gsync.Tuple{Object: tc.object, Relation: "member", User: tc.user}
			res, _ := sink.Apply(context.Background(), gsync.Changes{Adds: []gsync.Tuple{tu}})
			if got := len(res.Failed) == 0 && res.Added == 1; got != tc.openfga {
				t.Errorf("OpenFGA accepted = %v, want %v (%+v)", got, tc.openfga, res.Failed)
			}
			why := gsync.IDVerdict(tc.object, tc.user)
			if got := why == ""; got != tc.groupsync {
				t.Errorf("groupsync accepts = %v (%q), want %v", got, why, tc.groupsync)
			}
		})
	}
}

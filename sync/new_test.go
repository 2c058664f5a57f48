package sync_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// recordingTarget counts what New asks of a target.
type recordingTarget struct {
	sink               gsync.Sink
	registries, leases int
	registryObjectType string
	leaseTTL           time.Duration
}

// stubRegistry and stubLease are never called: New only builds them.
type stubRegistry struct{ gsync.Registry }
type stubLease struct{ gsync.Lease }

func (t *recordingTarget) Sink() gsync.Sink { return t.sink }

func (t *recordingTarget) Registry(_ config.Ownership, objectTypes []string) gsync.Registry {
	t.registries++
	t.registryObjectType = objectTypes[0]
	return stubRegistry{}
}

func (t *recordingTarget) Lease(_ config.Ownership, ttl time.Duration, _ *zap.Logger) gsync.Lease {
	t.leases++
	t.leaseTTL = ttl
	return stubLease{}
}

func TestNewBuildsRegistryAndLeaseFromConfig(t *testing.T) {
	cases := []struct {
		name               string
		sync               config.Sync
		registries, leases int
	}{
		{"defaults", config.Default().Sync, 1, 1},
		{"unset mode is owned", config.Sync{}, 1, 0},
		{"authoritative", config.Sync{Ownership: config.Ownership{Mode: config.OwnershipAuthoritative}}, 0, 0},
		{"target-driven with a lease", config.Sync{Ownership: config.Ownership{Mode: config.OwnershipTargetDriven},
			Lease: config.Lease{Enabled: true, TTL: config.Duration(time.Minute)}}, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Sync = tc.sync
			target := &recordingTarget{}
			e, err := gsync.New(&cfg, &snapshotSource{tenant()}, target, nil)
			if err != nil {
				t.Fatal(err)
			}
			if target.registries != tc.registries || target.leases != tc.leases || (e.Registry != nil) != (tc.registries > 0) || (e.Lease != nil) != (tc.leases > 0) {
				t.Fatalf("registries %d, leases %d; engine %+v", target.registries, target.leases, e)
			}
			if tc.registries > 0 && target.registryObjectType != cfg.Mapping.ObjectType {
				t.Fatalf("registry for %q", target.registryObjectType)
			}
			if tc.leases > 0 && target.leaseTTL != time.Duration(tc.sync.Lease.TTL) {
				t.Fatalf("lease ttl %s", target.leaseTTL)
			}
		})
	}
}

func TestNewRefusesABadMapping(t *testing.T) {
	cfg := config.Default()
	cfg.Mapping.Filters.Include = []config.Match{{Regex: "("}}
	if _, err := gsync.New(&cfg, &snapshotSource{tenant()}, &recordingTarget{}, nil); err == nil {
		t.Fatal("a bad regex was accepted")
	}
}

// emptySink holds nothing and accepts any scope.
type emptySink struct{}

func (emptySink) Verify(context.Context, gsync.Scope) error                { return nil }
func (emptySink) Read(context.Context, gsync.Scope) ([]gsync.Tuple, error) { return nil, nil }
func (emptySink) Apply(context.Context, gsync.Changes) (gsync.ApplyResult, error) {
	return gsync.ApplyResult{}, nil
}

// An engine whose settings leave the mode unset is in config's default
// mode, owned, and so cannot plan without a registry; an unknown mode is
// refused rather than guessed.
func TestEngineModeDefaultsToConfigs(t *testing.T) {
	m, err := gsync.NewMapper(config.Default().Mapping)
	if err != nil {
		t.Fatal(err)
	}
	for mode, want := range map[config.OwnershipMode]string{
		"":       "ownership mode owned needs a registry",
		"shared": `sync.ownership.mode "shared" is not one of`,
	} {
		e := &gsync.Engine{Source: &snapshotSource{tenant()}, Sink: emptySink{}, Mapper: m,
			Settings: config.Sync{Ownership: config.Ownership{Mode: mode}}}
		if _, err := e.Plan(context.Background()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mode %q: err %v, want %q", mode, err, want)
		}
	}
	e := &gsync.Engine{Source: &snapshotSource{tenant()}, Sink: emptySink{}, Mapper: m,
		Settings: config.Sync{Ownership: config.Ownership{Mode: config.OwnershipAuthoritative}}}
	rep, err := e.Run(context.Background(), false)
	if err != nil || rep.Ownership.Mode != config.OwnershipAuthoritative || rep.Ownership.Policy != config.DefaultPolicy {
		t.Fatalf("authoritative plan: %v %+v", err, rep)
	}
}

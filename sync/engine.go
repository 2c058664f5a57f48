package sync

import (
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
)

// Engine wires one run: source → mapping → ownership → sink read → diff →
// policy → guards → apply. cmd/groupsync and the daemon call the same Run.
type Engine struct {
	Source Source
	Sink   Sink
	Mapper *Mapper
	// Settings are the sync section of the config: policy, ownership mode,
	// guards, lease. Unset policy and mode are config's defaults.
	Settings config.Sync
	// Registry records owned groups (ownership mode owned); Lease keeps
	// runs apart. Both nil turns them off.
	Registry Registry
	Lease    Lease
	// TargetState keeps what a run knows of the target between runs, so
	// that the next reads only what changed (sync.incremental); nil reads
	// every managed group every run.
	TargetState StateStore
	// Force lets this one run past the guards.
	Force bool
	Log   *zap.Logger // nil logs nothing
}

// Target is where an engine writes: the sink, and the ownership registry
// and lease kept in it. It lets New build an engine without this package
// knowing any sink (sinks/openfga.Target is groupsync's).
type Target interface {
	Sink() Sink
	Registry(o config.Ownership, objectTypes []string) Registry
	Lease(o config.Ownership, ttl time.Duration, log *zap.Logger) Lease
}

// New builds the engine cfg describes around src and target: the mapper,
// the registry when the ownership mode is owned, the lease when it is
// enabled. The CLI, the daemon and the tests all build engines here.
func New(cfg *config.Config, src Source, target Target, log *zap.Logger) (*Engine, error) {
	mapper, err := NewMapper(cfg.Mapping)
	if err != nil {
		return nil, err
	}
	e := &Engine{Source: src, Sink: target.Sink(), Mapper: mapper, Settings: cfg.Sync, Log: log}
	if cfg.Sync.Ownership.ModeOrDefault() == config.OwnershipOwned {
		e.Registry = target.Registry(cfg.Sync.Ownership, mapper.OwnedTypes())
	}
	if cfg.Sync.Lease.Enabled {
		e.Lease = target.Lease(cfg.Sync.Ownership, time.Duration(cfg.Sync.Lease.TTL), log)
	}
	return e, nil
}

func (e *Engine) mode() config.OwnershipMode { return e.Settings.Ownership.ModeOrDefault() }

func (e *Engine) policy() config.Policy { return e.Settings.PolicyOrDefault() }

func (e *Engine) logger() *zap.Logger {
	if e.Log == nil {
		return zap.NewNop()
	}
	return e.Log
}

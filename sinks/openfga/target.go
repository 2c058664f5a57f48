package openfga

import (
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// Target is an OpenFGA store as the engine's target: the sink, and the
// ownership registry and lease, kept in the same store or (with
// NewTargetWithRegistryStore) in a store of groupsync's own.
type Target struct {
	sink *Sink
	own  *ownStore // sync.ownership.store; nil keeps them in sink's store
}

// NewTarget returns s as a gsync.Target, for gsync.New.
func NewTarget(s *Sink) Target { return Target{sink: s} }

func (t Target) Sink() gsync.Sink { return t.sink }

func (t Target) Registry(o config.Ownership, objectTypes []string) gsync.Registry {
	if t.own != nil {
		return &Registry{own: t.own, typ: o.Type, instance: o.Instance, objectTypes: objectTypes}
	}
	return NewRegistry(t.sink, o, objectTypes...)
}

func (t Target) Lease(o config.Ownership, ttl time.Duration, log *zap.Logger) gsync.Lease {
	if t.own != nil {
		l := NewLease(nil, o, ttl, log)
		l.own = t.own
		return l
	}
	return NewLease(t.sink, o, ttl, log)
}

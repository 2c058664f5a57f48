package openfga

import (
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	gsync "github.com/groupsync/groupsync/sync"
)

// Target is an OpenFGA store as the engine's target: the sink, and the
// ownership registry and lease kept in the same store.
type Target struct{ sink *Sink }

// NewTarget returns s as a gsync.Target, for gsync.New.
func NewTarget(s *Sink) Target { return Target{sink: s} }

func (t Target) Sink() gsync.Sink { return t.sink }

func (t Target) Registry(o config.Ownership, objectType string) gsync.Registry {
	return NewRegistry(t.sink, o, objectType)
}

func (t Target) Lease(o config.Ownership, ttl time.Duration, log *zap.Logger) gsync.Lease {
	return NewLease(t.sink, o, ttl, log)
}

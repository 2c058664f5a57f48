// Package state keeps a source's incremental state between runs: an opaque,
// already compressed blob, in memory (the daemon), in a file (a volume), or
// in Kubernetes ConfigMaps or Secrets (a CronJob), split over several
// objects when it outgrows one (1 MiB each).
//
// A Store never logs or returns the blob's content in errors; the
// Kubernetes service account token is read from its file for every request
// and never printed.
package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/groupsync/groupsync/config"
)

// Store loads and saves one state blob.
type Store interface {
	// Load returns the saved state, or nil and no error when there is none.
	// An error means the store could not be read (or what it holds is
	// damaged: see ErrCorrupt); callers fall back to a full read.
	Load(ctx context.Context) ([]byte, error)
	// Save replaces the state. A failed Save leaves either the old state or
	// one that Load reports as corrupt, never a wrong one.
	Save(ctx context.Context, data []byte) error
	// String says where the state is, for logs: "file /var/lib/x",
	// "configmap ns/name".
	String() string
}

// ErrCorrupt wraps a Load error for a state that exists but cannot be
// trusted (a torn write, a checksum mismatch).
var ErrCorrupt = errors.New("state is damaged")

// New opens the store that cfg describes: the Entra ID source's delta
// state (source.msgraph.delta.state).
func New(cfg config.DeltaState) (Store, error) { return Open(cfg, "source.msgraph.delta.state") }

// Open opens the store that cfg describes; field is where cfg is in the
// config ("sync.incremental.state"), for messages.
func Open(cfg config.DeltaState, field string) (Store, error) {
	switch cfg.Type {
	case "memory", "":
		return Shared(cfg.Name), nil
	case "file":
		if cfg.Path == "" {
			return nil, fmt.Errorf("%s.path: required for state type file", field)
		}
		f := NewFile(cfg.Path)
		f.field = field + ".path"
		return f, nil
	case "configmap", "secret":
		k, err := NewKubernetes(KubernetesOptions{Kind: cfg.Type, Namespace: cfg.Namespace, Name: cfg.Name, Field: field})
		if err != nil {
			// Outside a pod (a plan from a laptop, groupsync check): the
			// run reads in full and says why; saving fails with the reason.
			return unavailable{what: cfg.Type + " " + cfg.Name, err: err}, nil
		}
		return k, nil
	}
	return nil, fmt.Errorf("%s.type: %q is not one of memory, file, configmap, secret", field, cfg.Type)
}

// unavailable is a store that cannot work here; every call says why.
type unavailable struct {
	what string
	err  error
}

func (u unavailable) Load(context.Context) ([]byte, error) { return nil, u.err }
func (u unavailable) Save(context.Context, []byte) error   { return u.err }
func (u unavailable) String() string                       { return u.what }

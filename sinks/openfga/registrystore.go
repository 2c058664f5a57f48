package openfga

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/groupsync/groupsync/config"
)

// An application that writes its own model into its store (Incus writes it
// into an empty store, and again when it upgrades) leaves no safe room for
// groupsync's ownership type there. So the registry's markers and the lease
// may live in a store of groupsync's own on the same server
// (sync.ownership.store): its model is groupsync's alone, and the
// application's store holds nothing but the tuples groupsync manages.

// RegistryModelDSL is the model of a registry store: the managed objects'
// types, so that markers can name them, and the ownership type.
func RegistryModelDSL(ownershipType string, objectTypes ...string) string {
	dsl := "model\n  schema 1.1\n"
	for _, t := range objectTypes {
		dsl += "\ntype " + t + "\n"
	}
	return dsl + "\n" + OwnershipDSL(ownershipType, objectTypes...)
}

// ownStore is a registry store, opened at first use and created, with its
// model, at the first write: a plan never creates anything.
type ownStore struct {
	cfg  config.OpenFGA // the application's, with the registry store's name
	dsl  string
	opts []Option

	mu       sync.Mutex
	sink     *Sink
	prepared bool // the store and its model were ensured by this process
}

func newOwnStore(cfg config.OpenFGA, name, ownershipType string, objectTypes []string, opts []Option) *ownStore {
	cfg.StoreID, cfg.StoreName, cfg.AuthorizationModelID = "", name, ""
	return &ownStore{cfg: cfg, dsl: RegistryModelDSL(ownershipType, objectTypes...), opts: opts}
}

// forRead returns the store, or nil when it does not exist yet (nothing is
// owned then, and nobody holds the lease).
func (o *ownStore) forRead(ctx context.Context) (*Sink, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sink != nil {
		return o.sink, nil
	}
	s, err := New(ctx, o.cfg, o.opts...)
	if errors.Is(err, ErrStoreNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open the registry store %q (sync.ownership.store): %w", o.cfg.StoreName, err)
	}
	o.sink = s
	return s, nil
}

// forWrite returns the store, creating it and writing its model first
// when they are missing or the model lacks a type it now needs.
func (o *ownStore) forWrite(ctx context.Context) (*Sink, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.prepared {
		return o.sink, nil
	}
	if _, err := EnsureSetup(ctx, o.cfg, o.dsl, o.opts...); err != nil {
		return nil, fmt.Errorf("prepare the registry store %q (sync.ownership.store): %w", o.cfg.StoreName, err)
	}
	s, err := New(ctx, o.cfg, o.opts...)
	if err != nil {
		return nil, fmt.Errorf("open the registry store %q (sync.ownership.store): %w", o.cfg.StoreName, err)
	}
	o.sink, o.prepared = s, true
	return s, nil
}

// NewTargetWithRegistryStore is NewTarget with the ownership markers and
// the lease kept in the store named store (sync.ownership.store) on the
// same server, with cfg's settings and credentials. The store's model
// names ownershipType and objectTypes (the groups' type first, see
// gsync.Mapper.OwnedTypes).
func NewTargetWithRegistryStore(s *Sink, cfg config.OpenFGA, store, ownershipType string, objectTypes []string, opts ...Option) Target {
	return Target{sink: s, own: newOwnStore(cfg, store, ownershipType, objectTypes, opts)}
}

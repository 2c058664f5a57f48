package openfga

import (
	"context"
	"errors"
	"fmt"

	"github.com/groupsync/groupsync/config"
)

// An application that writes its own model into its store (Incus rewrites
// it at every start) leaves no room for groupsync's ownership type there.
// So the registry's markers and the lease may live in a store of
// groupsync's own on the same server (sync.ownership.store): its model is
// groupsync's alone, and the application's store holds nothing but the
// tuples groupsync manages.

// RegistryModelDSL is the model of a registry store: the managed objects'
// type, so that markers can name them, and the ownership type.
func RegistryModelDSL(ownershipType, objectType string) string {
	return "model\n  schema 1.1\n\ntype " + objectType + "\n\n" + OwnershipDSL(ownershipType, objectType)
}

// OpenRegistryStore connects to the registry store named store on the
// server of cfg. With create it makes the store and writes its model when
// they are missing (apply, model write); without, a missing store is
// ErrStoreNotFound (a plan writes nothing, not even a store).
func OpenRegistryStore(ctx context.Context, cfg config.OpenFGA, store, ownershipType, objectType string, create bool, opts ...Option) (*Sink, error) {
	rc := cfg
	rc.StoreID, rc.StoreName, rc.AuthorizationModelID = "", store, ""
	if create {
		if _, err := EnsureSetup(ctx, rc, RegistryModelDSL(ownershipType, objectType), opts...); err != nil {
			return nil, fmt.Errorf("prepare the registry store %q (sync.ownership.store): %w", store, err)
		}
	}
	s, err := New(ctx, rc, opts...)
	if errors.Is(err, ErrStoreNotFound) {
		return nil, fmt.Errorf("the registry store %q (sync.ownership.store) does not exist yet; apply or \"groupsync model write\" creates it: %w", store, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open the registry store %q (sync.ownership.store): %w", store, err)
	}
	return s, nil
}

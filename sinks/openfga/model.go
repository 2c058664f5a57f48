package openfga

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	fga "github.com/openfga/go-sdk"
	"github.com/openfga/language/pkg/go/transformer"

	"github.com/groupsync/groupsync/config"
)

// DefaultModel is the authorization model groupsync needs with its default
// mapping (object type group, relation member, users of type user, nested
// groups as group#member usersets).
const DefaultModel = `model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
`

// Setup is what EnsureSetup found or did.
type Setup struct {
	StoreID      string
	ModelID      string // the store's latest model, the one given or an equal one
	StoreCreated bool
	ModelWritten bool
}

// EnsureStore is EnsureSetup for callers that only need the ids; created
// reports whether the store was created (a model written into an existing
// store does not count; see Setup.ModelWritten).
func EnsureStore(ctx context.Context, cfg config.OpenFGA, dsl string, opts ...Option) (storeID, modelID string, created bool, err error) {
	su, err := EnsureSetup(ctx, cfg, dsl, opts...)
	return su.StoreID, su.ModelID, su.StoreCreated, err
}

// EnsureSetup prepares a store for first use: it finds the store
// (cfg.StoreID, which must exist, or cfg.StoreName, created when no store has
// that name) and writes dsl (DefaultModel when empty) as a new authorization
// model unless the store's latest model already says the same.
// cfg.AuthorizationModelID is not consulted. Running it again changes nothing.
func EnsureSetup(ctx context.Context, cfg config.OpenFGA, dsl string, opts ...Option) (Setup, error) {
	var su Setup
	if dsl == "" {
		dsl = DefaultModel
	}
	js, err := transformer.TransformDSLToJSON(dsl)
	if err != nil {
		return su, fmt.Errorf("parse the authorization model: %w", err)
	}
	// The canonical text to compare with; it must come from the JSON (the
	// parser's own proto does not convert back to DSL).
	wantDSL, err := transformer.TransformJSONStringToDSL(js)
	if err != nil {
		return su, fmt.Errorf("parse the authorization model: %w", err)
	}
	var body fga.WriteAuthorizationModelRequest
	if err := json.Unmarshal([]byte(js), &body); err != nil {
		return su, fmt.Errorf("convert the authorization model for the SDK: %w", err)
	}

	c, err := dial(cfg, opts)
	if err != nil {
		return su, err
	}
	s := &Sink{conn: c}
	if cfg.StoreID != "" {
		if err := s.resolveStore(ctx); err != nil {
			return su, err
		}
	} else {
		stores, err := c.findStores(ctx, cfg.StoreName)
		if err != nil {
			return su, err
		}
		if len(stores) == 0 {
			resp, err := call(ctx, &c, "CreateStore", "", nil, func(ctx context.Context) (fga.CreateStoreResponse, *http.Response, error) {
				return c.api.CreateStore(ctx).Body(fga.CreateStoreRequest{Name: cfg.StoreName}).Execute()
			})
			if err != nil {
				return su, fmt.Errorf("create store %q (openfga.store_name): %w", cfg.StoreName, err)
			}
			s.storeID, s.storeName, su.StoreCreated = resp.Id, resp.Name, true
		} else if err := s.pickStore(stores); err != nil {
			return su, err
		}
	}
	su.StoreID = s.storeID

	if !su.StoreCreated {
		latest, err := c.latestModel(ctx, s.storeID)
		if err != nil {
			return su, err
		}
		if latest != nil && sameModel(*latest, *wantDSL) {
			su.ModelID = latest.Id
			return su, nil
		}
	}
	resp, err := call(ctx, &c, "WriteAuthorizationModel", s.storeID, nil, func(ctx context.Context) (fga.WriteAuthorizationModelResponse, *http.Response, error) {
		return c.api.WriteAuthorizationModel(ctx, s.storeID).Body(body).Execute()
	})
	if err != nil {
		return su, fmt.Errorf("write the authorization model to store %s: %w", s.storeID, err)
	}
	su.ModelID, su.ModelWritten = resp.AuthorizationModelId, true
	return su, nil
}

// sameModel compares a model with a DSL text in the transformer's canonical
// form, so ids, source positions and JSON details do not count.
func sameModel(m fga.AuthorizationModel, wantDSL string) bool {
	js, err := json.Marshal(m)
	if err != nil {
		return false
	}
	got, err := transformer.TransformJSONStringToDSL(string(js))
	return err == nil && *got == wantDSL
}

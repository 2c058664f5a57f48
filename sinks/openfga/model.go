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

// EnsureStore prepares a store for first use: it finds the store
// (cfg.StoreID, which must exist, or cfg.StoreName, created when no store has
// that name) and writes dsl (DefaultModel when empty) as a new authorization
// model unless the store's latest model already says the same. created is
// true when anything was written: the store, the model or both.
// cfg.AuthorizationModelID is not consulted.
func EnsureStore(ctx context.Context, cfg config.OpenFGA, dsl string, opts ...Option) (storeID, modelID string, created bool, err error) {
	if dsl == "" {
		dsl = DefaultModel
	}
	want, err := transformer.TransformDSLToProto(dsl)
	if err != nil {
		return "", "", false, fmt.Errorf("parse the authorization model: %w", err)
	}
	wantDSL, err := transformer.TransformJSONProtoToDSL(want)
	if err != nil {
		return "", "", false, fmt.Errorf("parse the authorization model: %w", err)
	}
	var body fga.WriteAuthorizationModelRequest
	if js, err := transformer.TransformDSLToJSON(dsl); err != nil {
		return "", "", false, fmt.Errorf("parse the authorization model: %w", err)
	} else if err := json.Unmarshal([]byte(js), &body); err != nil {
		return "", "", false, fmt.Errorf("convert the authorization model for the SDK: %w", err)
	}

	c, err := dial(cfg, opts)
	if err != nil {
		return "", "", false, err
	}
	s := &Sink{conn: c}
	if cfg.StoreID != "" {
		if err := s.resolveStore(ctx); err != nil {
			return "", "", false, err
		}
	} else {
		stores, err := c.findStores(ctx, cfg.StoreName)
		if err != nil {
			return "", "", false, err
		}
		if len(stores) == 0 {
			resp, err := call(ctx, &c, "CreateStore", "", nil, func(ctx context.Context) (fga.CreateStoreResponse, *http.Response, error) {
				return c.api.CreateStore(ctx).Body(fga.CreateStoreRequest{Name: cfg.StoreName}).Execute()
			})
			if err != nil {
				return "", "", false, fmt.Errorf("create store %q (openfga.store_name): %w", cfg.StoreName, err)
			}
			s.storeID, s.storeName, created = resp.Id, resp.Name, true
		} else if err := s.pickStore(stores); err != nil {
			return "", "", false, err
		}
	}

	if !created {
		latest, err := c.latestModel(ctx, s.storeID)
		if err != nil {
			return "", "", false, err
		}
		if latest != nil && sameModel(*latest, wantDSL) {
			return s.storeID, latest.Id, false, nil
		}
	}
	resp, err := call(ctx, &c, "WriteAuthorizationModel", s.storeID, nil, func(ctx context.Context) (fga.WriteAuthorizationModelResponse, *http.Response, error) {
		return c.api.WriteAuthorizationModel(ctx, s.storeID).Body(body).Execute()
	})
	if err != nil {
		return s.storeID, "", created, fmt.Errorf("write the authorization model to store %s: %w", s.storeID, err)
	}
	return s.storeID, resp.AuthorizationModelId, true, nil
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

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
//
// The written model replaces the latest one whole, so any type it lacks is
// gone from the store's checks: use it only on stores groupsync has to
// itself. PlanModel merges into a model an application owns instead.
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

// ModelPlan is what groupsync would add to a store's latest model, from
// PlanModel; Apply writes it. Planning and writing are two steps so that a
// caller can show the additions before anything is written.
type ModelPlan struct {
	// StoreID is "" when no store has openfga.store_name yet; Apply
	// creates it.
	StoreID   string
	StoreName string
	// BaseModelID is the store's latest model when planned, "" when it had
	// none (the merge is then groupsync's full model).
	BaseModelID string
	Merge       ModelMerge

	s *Sink
}

// PlanModel reads the store's latest model and merges into it what
// groupsync needs (MergeModel with need and full in DSL; full "" is
// DefaultModel). It writes nothing and creates no store. The store is
// cfg.StoreID, which must exist, or the one named cfg.StoreName, which may
// not exist yet.
func PlanModel(ctx context.Context, cfg config.OpenFGA, need, full string, opts ...Option) (*ModelPlan, error) {
	if full == "" {
		full = DefaultModel
	}
	needModel, err := ParseModel(need)
	if err != nil {
		return nil, fmt.Errorf("groupsync's needed model: %w", err)
	}
	fullModel, err := ParseModel(full)
	if err != nil {
		return nil, fmt.Errorf("groupsync's full model: %w", err)
	}
	c, err := dial(cfg, opts)
	if err != nil {
		return nil, err
	}
	p := &ModelPlan{s: &Sink{conn: c}, StoreName: cfg.StoreName}
	if cfg.StoreID != "" {
		if err := p.s.resolveStore(ctx); err != nil {
			return nil, err
		}
	} else {
		stores, err := c.findStores(ctx, cfg.StoreName)
		if err != nil {
			return nil, err
		}
		if len(stores) > 0 {
			if err := p.s.pickStore(stores); err != nil {
				return nil, err
			}
		}
	}
	p.StoreID = p.s.storeID
	if p.s.storeName != "" {
		p.StoreName = p.s.storeName
	}

	var base *fga.AuthorizationModel
	if p.StoreID != "" {
		if base, err = c.latestModel(ctx, p.StoreID); err != nil {
			return nil, err
		}
	}
	if base != nil {
		p.BaseModelID = base.Id
	}
	where := "store " + p.StoreID
	if p.StoreID == "" {
		where = fmt.Sprintf("store %q (to be created)", cfg.StoreName)
	}
	if p.Merge, err = MergeModel(base, needModel, fullModel); err != nil {
		if p.BaseModelID != "" {
			where += ", authorization model " + p.BaseModelID
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return p, nil
}

// Apply creates the store if the plan found none and writes the merged
// model if it adds anything. It refuses, writing nothing, when the store's
// latest model is no longer the one planned against (an application wrote
// its model meanwhile: writing the merge would drop that change).
func (p *ModelPlan) Apply(ctx context.Context) (Setup, error) {
	c := &p.s.conn
	su := Setup{StoreID: p.StoreID, ModelID: p.BaseModelID}
	if p.StoreID == "" {
		stores, err := c.findStores(ctx, p.StoreName)
		if err != nil {
			return su, err
		}
		if len(stores) > 0 {
			return su, fmt.Errorf("store %q was created by someone else since the plan; nothing written, run again to merge into it", p.StoreName)
		}
		resp, err := call(ctx, c, "CreateStore", "", nil, func(ctx context.Context) (fga.CreateStoreResponse, *http.Response, error) {
			return c.api.CreateStore(ctx).Body(fga.CreateStoreRequest{Name: p.StoreName}).Execute()
		})
		if err != nil {
			return su, fmt.Errorf("create store %q (openfga.store_name): %w", p.StoreName, err)
		}
		p.StoreID, su.StoreID, su.StoreCreated = resp.Id, resp.Id, true
	} else {
		latest, err := c.latestModel(ctx, p.StoreID)
		if err != nil {
			return su, err
		}
		now := ""
		if latest != nil {
			now = latest.Id
		}
		if now != p.BaseModelID {
			return su, fmt.Errorf("store %s: the latest authorization model changed since the plan (%s, now %s); nothing written, run again to merge into the new one",
				p.StoreID, orNone(p.BaseModelID), orNone(now))
		}
	}
	if p.Merge.UpToDate() {
		return su, nil
	}
	m := p.Merge.Model
	body := fga.WriteAuthorizationModelRequest{TypeDefinitions: m.TypeDefinitions, SchemaVersion: m.SchemaVersion, Conditions: m.Conditions}
	resp, err := call(ctx, c, "WriteAuthorizationModel", p.StoreID, nil, func(ctx context.Context) (fga.WriteAuthorizationModelResponse, *http.Response, error) {
		return c.api.WriteAuthorizationModel(ctx, p.StoreID).Body(body).Execute()
	})
	if err != nil {
		return su, fmt.Errorf("write the merged authorization model to store %s: %w", p.StoreID, err)
	}
	su.ModelID, su.ModelWritten = resp.AuthorizationModelId, true
	return su, nil
}

func orNone(id string) string {
	if id == "" {
		return "none"
	}
	return id
}

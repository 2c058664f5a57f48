package openfga_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	fga "github.com/openfga/go-sdk"
	"github.com/openfga/language/pkg/go/transformer"

	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
)

// The models groupsync asks for with the default mapping and the ownership
// type: needFlatten under mapping.nesting flatten (plain users only),
// needUserset under userset, fullModel what an empty store gets.
const (
	ownershipDSL = `
type groupsync_instance
  relations
    define manages: [group]
    define lease: [groupsync_instance]
`
	needFlatten = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
` + ownershipDSL
	needUserset = openfga.DefaultModel + ownershipDSL
	fullModel   = openfga.DefaultModel + ownershipDSL
)

// appModel is an application's model in the shape of Incus's (see
// incusModel in cmd/groupsync/model_cmd_test.go): group.member takes plain
// users only, grants take group usersets, and it has a condition.
const appModel = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type project
  relations
    define admin: [user, group#member]
    define viewer: [user, group#member, user with office_hours] or admin
    define can_view: viewer
condition office_hours(hour: int) {
  hour >= 9 && hour < 17
}
`

func parse(t *testing.T, dsl string) fga.AuthorizationModel {
	t.Helper()
	m, err := openfga.ParseModel(dsl)
	if err != nil {
		t.Fatalf("%v\n%s", err, dsl)
	}
	return m
}

// typeJSON is each type definition of m as JSON, by type name.
func typeJSON(t *testing.T, m fga.AuthorizationModel) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, td := range m.TypeDefinitions {
		b, err := json.Marshal(td)
		if err != nil {
			t.Fatal(err)
		}
		out[td.Type] = string(b)
	}
	return out
}

func modelDSL(t *testing.T, m fga.AuthorizationModel) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dsl, err := transformer.TransformJSONStringToDSL(string(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return *dsl
}

func TestModelMergeIntoAppModel(t *testing.T) {
	base := parse(t, appModel)
	base.Id = "01APPMODEL"
	before := typeJSON(t, base)
	baseJSON, _ := json.Marshal(base)

	got, err := openfga.MergeModel(&base, parse(t, needFlatten), parse(t, fullModel))
	if err != nil {
		t.Fatal(err)
	}
	wantDiff := "+ type groupsync_instance\n+ groupsync_instance.lease: [groupsync_instance]\n+ groupsync_instance.manages: [group]\n"
	if got.Diff() != wantDiff || got.UpToDate() {
		t.Errorf("diff:\n%s\nwant:\n%s", got.Diff(), wantDiff)
	}
	after := typeJSON(t, got.Model)
	for typ, js := range before {
		if after[typ] != js {
			t.Errorf("type %s changed:\n%s\n→\n%s", typ, js, after[typ])
		}
	}
	if got.Model.SchemaVersion != "1.1" || got.Model.Id != "" {
		t.Errorf("schema %q id %q", got.Model.SchemaVersion, got.Model.Id)
	}
	if c, _ := json.Marshal(got.Model.Conditions); !strings.Contains(string(c), "hour \\u003e= 9") && !strings.Contains(string(c), "hour >= 9") {
		t.Errorf("conditions lost: %s", c)
	}
	if again, _ := json.Marshal(base); string(again) != string(baseJSON) {
		t.Error("MergeModel changed its base")
	}
	// The merged model is a valid model: it converts back to DSL with the
	// app's condition and the new type.
	dsl := modelDSL(t, got.Model)
	if !strings.Contains(dsl, "condition office_hours(hour: int)") || !strings.Contains(dsl, "type groupsync_instance") {
		t.Errorf("merged DSL:\n%s", dsl)
	}

	// Merging into the merged model adds nothing and keeps its id.
	merged := got.Model
	merged.Id = "01MERGED"
	again, err := openfga.MergeModel(&merged, parse(t, needFlatten), parse(t, fullModel))
	if err != nil || !again.UpToDate() || again.Model.Id != "01MERGED" || again.Diff() != "" {
		t.Errorf("second merge = %+v, %v", again.Added, err)
	}
}

func TestModelMergeRefusesToChangeAppRelation(t *testing.T) {
	base := parse(t, appModel)
	_, err := openfga.MergeModel(&base, parse(t, needUserset), parse(t, fullModel))
	var ce *openfga.ModelConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a ModelConflictError", err)
	}
	want := openfga.ModelConflict{Type: "group", Relation: "member", Accepts: []string{"user"}, Missing: []string{"group#member"}}
	if len(ce.Conflicts) != 1 || !conflictEqual(ce.Conflicts[0], want) {
		t.Fatalf("conflicts = %+v", ce.Conflicts)
	}
	for _, s := range []string{"group.member", "[user]", `"group#member"`, "define member: [user, group#member]"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
}

func conflictEqual(a, b openfga.ModelConflict) bool {
	return a.Type == b.Type && a.Relation == b.Relation && slices.Equal(a.Accepts, b.Accepts) && slices.Equal(a.Missing, b.Missing)
}

func TestModelMergeEdgeCases(t *testing.T) {
	need, full := parse(t, needUserset), parse(t, fullModel)
	tests := []struct {
		name     string
		base     string
		diff     string                  // want, when the merge succeeds
		conflict []openfga.ModelConflict // want, when it is refused
	}{{
		name: "relation with more than groupsync's definition is kept",
		base: `model
  schema 1.1
type user
type group
  relations
    define owner: [user]
    define member: [user, group#member] or owner
type groupsync_instance
  relations
    define manages: [group]
    define lease: [groupsync_instance]
    define audit: [user]
`,
		diff: "",
	}, {
		name: "missing relation on an existing type is added, others kept",
		base: `model
  schema 1.1
type user
  relations
    define manager: [user]
type group
  relations
    define owner: [user]
`,
		diff: "+ type groupsync_instance\n+ groupsync_instance.lease: [groupsync_instance]\n+ groupsync_instance.manages: [group]\n+ group.member: [user, group#member]\n",
	}, {
		name: "computed-only relation takes nothing directly",
		base: `model
  schema 1.1
type user
type group
  relations
    define owner: [user]
    define member: owner
`,
		conflict: []openfga.ModelConflict{{Type: "group", Relation: "member", Missing: []string{"user", "group#member"}}},
	}, {
		name: "wildcard and conditional user types are not the plain type",
		base: `model
  schema 1.1
type user
type group
  relations
    define member: [user:*, user with weekday, group#member]
type groupsync_instance
  relations
    define manages: [group, user]
    define lease: [user]
condition weekday(day: int) {
  day < 6
}
`,
		conflict: []openfga.ModelConflict{
			{Type: "group", Relation: "member", Accepts: []string{"user:*", "user with weekday", "group#member"}, Missing: []string{"user"}},
			{Type: "groupsync_instance", Relation: "lease", Accepts: []string{"user"}, Missing: []string{"groupsync_instance"}},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := parse(t, tc.base)
			before := typeJSON(t, base)
			got, err := openfga.MergeModel(&base, need, full)
			if tc.conflict != nil {
				var ce *openfga.ModelConflictError
				if !errors.As(err, &ce) || !slices.EqualFunc(ce.Conflicts, tc.conflict, conflictEqual) {
					t.Fatalf("err = %v, want conflicts %+v", err, tc.conflict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Diff() != tc.diff {
				t.Errorf("diff:\n%s\nwant:\n%s", got.Diff(), tc.diff)
			}
			after := typeJSON(t, got.Model)
			for typ, js := range before {
				if typ == "group" && strings.Contains(tc.diff, "+ group.") {
					continue // changed on purpose, checked below
				}
				if after[typ] != js {
					t.Errorf("type %s changed:\n%s\n→\n%s", typ, js, after[typ])
				}
			}
			if strings.Contains(tc.diff, "+ group.member") {
				dsl := modelDSL(t, got.Model)
				if !strings.Contains(dsl, "define owner: [user]") || !strings.Contains(dsl, "define member: [user, group#member]") {
					t.Errorf("merged group type:\n%s", dsl)
				}
			}
		})
	}
}

func TestModelMergeSchemas(t *testing.T) {
	need, full := parse(t, needFlatten), parse(t, fullModel)

	// Schema 1.0 has no type restrictions, so it cannot be written as DSL
	// 1.1; build it as the API returns it.
	old := fga.AuthorizationModel{Id: "01OLD", SchemaVersion: "1.0", TypeDefinitions: []fga.TypeDefinition{
		{Type: "group", Relations: &map[string]fga.Userset{"member": {This: &map[string]any{}}}},
	}}
	_, err := openfga.MergeModel(&old, need, full)
	if !errors.Is(err, openfga.ErrModelSchema) || !strings.Contains(err.Error(), "1.0") || !strings.Contains(err.Error(), "01OLD") {
		t.Errorf("schema 1.0: %v", err)
	}
	modular := parse(t, appModel)
	modular.SchemaVersion = "1.2"
	if _, err := openfga.MergeModel(&modular, need, full); !errors.Is(err, openfga.ErrModelSchema) || !strings.Contains(err.Error(), "--fragment") {
		t.Errorf("schema 1.2: %v", err)
	}
	// groupsync's own models must be 1.1 too.
	if _, err := openfga.MergeModel(nil, old, full); !errors.Is(err, openfga.ErrModelSchema) {
		t.Errorf("needed model 1.0: %v", err)
	}
}

func TestModelMergeEmptyStore(t *testing.T) {
	got, err := openfga.MergeModel(nil, parse(t, needFlatten), parse(t, fullModel))
	if err != nil {
		t.Fatal(err)
	}
	if want := modelDSL(t, parse(t, fullModel)); modelDSL(t, got.Model) != want {
		t.Errorf("empty store gets:\n%s\nwant:\n%s", modelDSL(t, got.Model), want)
	}
	wantDiff := "+ type user\n+ type group\n+ group.member: [user, group#member]\n+ type groupsync_instance\n+ groupsync_instance.lease: [groupsync_instance]\n+ groupsync_instance.manages: [group]\n"
	if got.Diff() != wantDiff {
		t.Errorf("diff:\n%s", got.Diff())
	}
}

// latestModel reads the store's latest model over the API, as an
// application would.
func latestModel(t *testing.T, srv *fgatest.Server, storeID string) fga.AuthorizationModel {
	t.Helper()
	resp, err := http.Get(srv.URL + "/stores/" + storeID + "/authorization-models?page_size=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body fga.ReadAuthorizationModelsResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.AuthorizationModels) == 0 {
		t.Fatalf("read models of %s: %v %+v", storeID, err, body)
	}
	return body.AuthorizationModels[0]
}

func TestModelPlanApply(t *testing.T) {
	srv := fgatest.New(t)
	storeID, appID := srv.CreateStore(t, "app", appModel)
	cfg := testConfig(srv, storeID)

	plan, err := openfga.PlanModel(t.Context(), cfg, needFlatten, fullModel)
	if err != nil {
		t.Fatal(err)
	}
	if plan.StoreID != storeID || plan.BaseModelID != appID || plan.Merge.UpToDate() {
		t.Fatalf("plan = %+v", plan)
	}
	if n := srv.Requests(fgatest.WriteAuthorizationModel); n != 0 {
		t.Fatalf("planning wrote %d models", n)
	}
	su, err := plan.Apply(t.Context())
	if err != nil || !su.ModelWritten || su.ModelID == appID || su.StoreCreated {
		t.Fatalf("apply = %+v, %v", su, err)
	}
	if got := latestModel(t, srv, storeID); got.Id != su.ModelID || !strings.Contains(modelDSL(t, got), "condition office_hours") {
		t.Errorf("latest model %s:\n%s", got.Id, modelDSL(t, got))
	}

	// The application writes its model again between plan and apply: the
	// plan is stale and writing it would drop the application's change.
	plan, err = openfga.PlanModel(t.Context(), cfg, needFlatten, fullModel)
	if err != nil || !plan.Merge.UpToDate() {
		t.Fatalf("second plan = %+v, %v", plan, err)
	}
	newApp := srv.WriteModel(t, storeID, appModel)
	if _, err := plan.Apply(t.Context()); err == nil || !strings.Contains(err.Error(), "changed since the plan") || !strings.Contains(err.Error(), newApp) {
		t.Errorf("stale plan applied: %v", err)
	}
	if got := latestModel(t, srv, storeID); got.Id != newApp {
		t.Errorf("latest model %s, want the application's %s", got.Id, newApp)
	}

	// A userset mapping needs group#member on the app's group.member.
	_, err = openfga.PlanModel(t.Context(), cfg, needUserset, fullModel)
	var ce *openfga.ModelConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), storeID) {
		t.Errorf("userset plan: %v", err)
	}

	// A store that does not exist is planned, and created only on Apply.
	cfg.StoreID, cfg.StoreName = "", "fresh"
	plan, err = openfga.PlanModel(t.Context(), cfg, needFlatten, fullModel)
	if err != nil || plan.StoreID != "" || plan.BaseModelID != "" || len(plan.Merge.Added) != 6 {
		t.Fatalf("plan for a new store = %+v, %v", plan, err)
	}
	if n := srv.Requests(fgatest.CreateStore); n != 0 {
		t.Fatalf("planning created %d stores", n)
	}
	su, err = plan.Apply(t.Context())
	if err != nil || !su.StoreCreated || !su.ModelWritten || su.StoreID == "" {
		t.Fatalf("apply to a new store = %+v, %v", su, err)
	}
	if got, want := modelDSL(t, latestModel(t, srv, su.StoreID)), modelDSL(t, parse(t, fullModel)); got != want {
		t.Errorf("new store's model:\n%s\nwant:\n%s", got, want)
	}
}

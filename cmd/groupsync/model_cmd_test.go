package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfga/language/pkg/go/transformer"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

// latestModelDSL reads the store's latest model over the API, as Incus
// would, and returns its id and its types in canonical DSL, by type name.
func latestModelDSL(t *testing.T, srv *fgatest.Server, storeID string) (string, map[string]string) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/stores/" + storeID + "/authorization-models?page_size=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Models []json.RawMessage `json:"authorization_models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Models) == 0 {
		t.Fatalf("read the models of store %s: %v %s", storeID, err, resp.Status)
	}
	var id struct{ ID string }
	if err := json.Unmarshal(body.Models[0], &id); err != nil {
		t.Fatal(err)
	}
	dsl, err := transformer.TransformJSONStringToDSL(string(body.Models[0]))
	if err != nil {
		t.Fatal(err)
	}
	return id.ID, dslTypes(*dsl)
}

// dslTypes splits a model in DSL into its type blocks, by type name.
func dslTypes(dsl string) map[string]string {
	out := map[string]string{}
	for _, block := range strings.Split(dsl, "\ntype ")[1:] {
		name, _, _ := strings.Cut(strings.TrimSpace(block), "\n")
		out[name] = "type " + strings.TrimSpace(block)
	}
	return out
}

// check asks the server, as Incus would, whether user has relation on
// object under the store's latest model.
func check(t *testing.T, srv *fgatest.Server, storeID, user, relation, object string) bool {
	t.Helper()
	req := `{"tuple_key": {"user": "` + user + `", "relation": "` + relation + `", "object": "` + object + `"}}`
	resp, err := http.Post(srv.URL+"/stores/"+storeID+"/check", "application/json", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Allowed bool
		Message string
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("check %s %s %s: %s %v %s", user, relation, object, resp.Status, err, body.Message)
	}
	return body.Allowed
}

func TestModelWriteMergesIntoIncusModel(t *testing.T) {
	srv := fgatest.New(t)
	storeID, incusID := srv.CreateStore(t, "groupsync-quickstart", fgatest.IncusLikeModel)
	cfg := exampleConfig(t, srv, "")
	t.Setenv("GROUPSYNC_MAPPING_NESTING", "flatten")
	_, before := latestModelDSL(t, srv, storeID)
	// Incus's own grants work before groupsync.
	srv.WriteTuples(t, storeID,
		gsync.Tuple{User: "user:ann", Relation: "member", Object: "group:ops"},
		gsync.Tuple{User: "group:ops#member", Relation: "operator", Object: "project:default"},
		gsync.Tuple{User: "project:default", Relation: "project", Object: "instance:web"},
	)
	if !check(t, srv, storeID, "user:ann", "can_exec", "instance:web") {
		t.Fatal("the Incus-like model does not grant what it should")
	}

	diff := "+ type groupsync_instance\n+ groupsync_instance.lease: [groupsync_instance]\n+ groupsync_instance.manages: [group]\n"
	code, out, errOut := cli(t, "model", "write", "--dry-run", "-c", cfg)
	if code != 0 || !strings.Contains(out, diff) || !strings.Contains(out, "dry run: nothing written") || !strings.Contains(out, incusID) {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := srv.Requests(fgatest.WriteAuthorizationModel); n != 0 {
		t.Fatalf("the dry run wrote %d models", n)
	}

	code, out, errOut = cli(t, "model", "write", "-c", cfg)
	if code != 0 || !strings.Contains(out, diff) || !strings.Contains(out, "written") {
		t.Fatalf("model write: exit %d\n%s\n%s", code, out, errOut)
	}
	// The diff comes before the write's report.
	if strings.Index(out, diff) > strings.Index(out, "written") {
		t.Errorf("the diff follows the write:\n%s", out)
	}
	mergedID, after := latestModelDSL(t, srv, storeID)
	if mergedID == incusID {
		t.Fatal("no model was written")
	}
	for _, typ := range fgatest.IncusLikeTypes {
		if after[typ] != before[typ] {
			t.Errorf("Incus's type %s changed:\n%s\n→\n%s", typ, before[typ], after[typ])
		}
	}
	if len(after) != len(fgatest.IncusLikeTypes)+1 || !strings.Contains(after["groupsync_instance"], "define manages: [group]") {
		t.Errorf("merged model's types: %v", after)
	}
	if !check(t, srv, storeID, "user:ann", "can_exec", "instance:web") || check(t, srv, storeID, "user:bob", "can_exec", "instance:web") {
		t.Error("Incus's checks changed with the merged model")
	}

	// Twice: nothing to add, nothing written.
	code, out, _ = cli(t, "model", "write", "-c", cfg)
	if code != 0 || !strings.Contains(out, "up to date") || strings.Contains(out, "+ ") {
		t.Fatalf("second model write: exit %d\n%s", code, out)
	}
	if n := srv.Requests(fgatest.WriteAuthorizationModel); n != 1 {
		t.Errorf("%d model writes, want 1", n)
	}

	// groupsync syncs into the merged model, and Incus still answers.
	if code, out, errOut := cli(t, "apply", "-c", cfg, "--log-level=warn"); code != 0 {
		t.Fatalf("apply into the merged model: exit %d\n%s\n%s", code, out, errOut)
	}
	if !check(t, srv, storeID, "user:ann", "can_exec", "instance:web") {
		t.Error("Incus's checks changed after apply")
	}
}

func TestModelWriteRefusesToChangeIncusGroup(t *testing.T) {
	srv := fgatest.New(t)
	storeID, incusID := srv.CreateStore(t, "groupsync-quickstart", fgatest.IncusLikeModel)
	cfg := exampleConfig(t, srv, "") // mapping.nesting userset: needs group#member on group.member

	for _, args := range [][]string{{"model", "write", "--dry-run", "-c", cfg}, {"model", "write", "-c", cfg}} {
		code, out, errOut := cli(t, args...)
		if code != 1 {
			t.Fatalf("%v: exit %d, want 1\n%s\n%s", args, code, out, errOut)
		}
		for _, s := range []string{"group.member", "[user]", `"group#member"`, "define member: [user, group#member]", "mapping.nesting to flatten"} {
			if !strings.Contains(errOut, s) {
				t.Errorf("%v: the error does not say %q:\n%s", args, s, errOut)
			}
		}
	}
	if n := srv.Requests(fgatest.WriteAuthorizationModel); n != 0 {
		t.Errorf("%d models written after a refusal", n)
	}
	if id, _ := latestModelDSL(t, srv, storeID); id != incusID {
		t.Errorf("latest model %s, want Incus's %s", id, incusID)
	}
}

func TestModelWriteEmptyStore(t *testing.T) {
	srv := fgatest.New(t)
	cfg := exampleConfig(t, srv, "")
	want := dslTypes(canonicalDSL(t, runOut(t, "model", "-c", cfg)))

	// No store: the dry run creates nothing and shows the whole model.
	code, out, errOut := cli(t, "model", "write", "--dry-run", "-c", cfg)
	if code != 0 || !strings.Contains(out, "would be created") || !strings.Contains(out, "+ type user\n+ type group\n+ group.member: [user, group#member]\n") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := srv.Requests(fgatest.CreateStore); n != 0 {
		t.Fatalf("the dry run created %d stores", n)
	}
	out = runOut(t, "model", "write", "-c", cfg)
	if !strings.Contains(out, "(created)") {
		t.Fatalf("model write:\n%s", out)
	}
	storeID := strings.Fields(out[strings.LastIndex(out, "store "):])[1]
	if _, got := latestModelDSL(t, srv, storeID); !equalTypes(got, want) {
		t.Errorf("new store's model: %v\nwant %v", got, want)
	}

	// A store without a model gets the whole model too.
	empty, _ := srv.CreateStore(t, "empty", "")
	t.Setenv("GROUPSYNC_OPENFGA_STORE_NAME", "empty")
	out = runOut(t, "model", "write", "-c", cfg)
	if !strings.Contains(out, "no authorization model yet") || !strings.Contains(out, "written") {
		t.Fatalf("model write to a store without a model:\n%s", out)
	}
	if _, got := latestModelDSL(t, srv, empty); !equalTypes(got, want) {
		t.Errorf("empty store's model: %v\nwant %v", got, want)
	}
}

func equalTypes(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func canonicalDSL(t *testing.T, dsl string) string {
	t.Helper()
	js, err := transformer.TransformDSLToJSON(dsl)
	if err != nil {
		t.Fatalf("%v\n%s", err, dsl)
	}
	out, err := transformer.TransformJSONStringToDSL(js)
	if err != nil {
		t.Fatal(err)
	}
	return *out
}

func TestModelPrintFormats(t *testing.T) {
	userset := exampleConfig(t, fgatest.New(t), "") // mapping.nesting userset
	t.Chdir(t.TempDir())                            // no config file: the defaults (nesting flatten)
	dsl := runOut(t, "model")

	js := runOut(t, "model", "-o", "json")
	back, err := transformer.TransformJSONStringToDSL(js)
	if err != nil || *back != canonicalDSL(t, dsl) {
		t.Errorf("model -o json is not the DSL's model (%v):\n%s", err, js)
	}

	frag := runOut(t, "model", "--fragment")
	if !strings.HasPrefix(frag, "# ") || strings.Contains(frag, "\n  schema ") || strings.Contains(frag, "\nmodel") ||
		!strings.Contains(frag, "define member: [user]\n") || !strings.Contains(frag, "type groupsync_instance") {
		t.Errorf("model --fragment (flatten):\n%s", frag)
	}
	if frag := runOut(t, "model", "--fragment", "-c", userset); !strings.Contains(frag, "define member: [user, group#member]\n") {
		t.Errorf("model --fragment (userset):\n%s", frag)
	}
	fragJSON := runOut(t, "model", "--fragment", "-o", "json")
	if _, err := transformer.TransformJSONStringToDSL(fragJSON); err != nil || !json.Valid([]byte(fragJSON)) {
		t.Errorf("model --fragment -o json is not a JSON model (%v):\n%s", err, fragJSON)
	}

	if code, _, errOut := cli(t, "model", "-o", "yaml"); code != 1 || !strings.Contains(errOut, "--output") {
		t.Errorf("-o yaml: exit %d %s", code, errOut)
	}
	if code, _, _ := cli(t, "model", "write", "-c", filepath.Join(t.TempDir(), "none.yaml")); code != 1 {
		t.Errorf("model write without a config: exit %d", code)
	}
}

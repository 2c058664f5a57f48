package openfga_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

var groupScope = gsync.Scope{ObjectType: "group", Relation: "member", UserTypes: []string{"user", "group#member"}}

// testConfig is the default config pointed at srv, with waits short enough
// for tests.
func testConfig(srv *fgatest.Server, storeID string) config.OpenFGA {
	c := config.Default().OpenFGA
	c.APIURL = srv.URL
	c.StoreID = storeID
	c.MaxRetries = 3
	c.RetryMinWait = config.Duration(time.Millisecond)
	c.RequestTimeout = config.Duration(10 * time.Second)
	return c
}

func newSink(t *testing.T, cfg config.OpenFGA) *openfga.Sink {
	t.Helper()
	s, err := openfga.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// setup starts a server with one store holding the default model.
func setup(t *testing.T, opts ...fgatest.Option) (*fgatest.Server, string, config.OpenFGA) {
	t.Helper()
	srv := fgatest.New(t, opts...)
	storeID, _ := srv.CreateStore(t, "groups", openfga.DefaultModel)
	return srv, storeID, testConfig(srv, storeID)
}

func member(user, group string) gsync.Tuple {
	return gsync.Tuple{User: user, Relation: "member", Object: group}
}

func users(group string, n int) []gsync.Tuple {
	out := make([]gsync.Tuple, n)
	for i := range out {
		out[i] = member(fmt.Sprintf("user:u%04d", i), group)
	}
	return out
}

func sorted(ts []gsync.Tuple) []gsync.Tuple {
	ts = slices.Clone(ts)
	gsync.SortTuples(ts)
	return ts
}

func wantTuples(t *testing.T, got, want []gsync.Tuple) {
	t.Helper()
	want = sorted(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %d tuples, want %d\n got: %v\nwant: %v", len(got), len(want), got, want)
	}
}

func TestDefaultModel(t *testing.T) {
	if fgatest.GroupModel != openfga.DefaultModel {
		t.Error("fgatest.GroupModel and openfga.DefaultModel differ")
	}
}

func TestStoreByName(t *testing.T) {
	srv := fgatest.New(t)
	wantID, _ := srv.CreateStore(t, "groupsync prod", openfga.DefaultModel)
	srv.CreateStore(t, "groupsync test", openfga.DefaultModel)
	dup1, _ := srv.CreateStore(t, "twice", openfga.DefaultModel)
	dup2, _ := srv.CreateStore(t, "twice", openfga.DefaultModel)

	byName := func(name string) config.OpenFGA {
		c := testConfig(srv, "")
		c.StoreName = name
		return c
	}

	s := newSink(t, byName("groupsync prod"))
	if s.StoreID() != wantID || s.StoreName() != "groupsync prod" {
		t.Errorf("found store %s %q, want %s", s.StoreID(), s.StoreName(), wantID)
	}

	_, err := openfga.New(t.Context(), byName("groupsync"))
	if !errors.Is(err, openfga.ErrStoreNotFound) || !strings.Contains(err.Error(), `openfga.store_name "groupsync"`) {
		t.Errorf("missing store: %v", err)
	}

	_, err = openfga.New(t.Context(), byName("twice"))
	if err == nil || !strings.Contains(err.Error(), "openfga.store_name") || !strings.Contains(err.Error(), "2 stores") ||
		!strings.Contains(err.Error(), dup1) || !strings.Contains(err.Error(), dup2) || !strings.Contains(err.Error(), "openfga.store_id") {
		t.Errorf("ambiguous store: %v", err)
	}

	_, err = openfga.New(t.Context(), testConfig(srv, "01HZZZZZZZZZZZZZZZZZZZZZZZ"))
	if !errors.Is(err, openfga.ErrStoreNotFound) || !strings.Contains(err.Error(), "openfga.store_id") {
		t.Errorf("missing store id: %v", err)
	}
}

func TestModelLatestAndPinned(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "groups", "")

	_, err := openfga.New(t.Context(), testConfig(srv, storeID))
	if !errors.Is(err, openfga.ErrNoModel) {
		t.Fatalf("store without a model: %v", err)
	}

	oldID := srv.WriteModel(t, storeID, "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user]\n")
	newID := srv.WriteModel(t, storeID, openfga.DefaultModel)

	latest := newSink(t, testConfig(srv, storeID))
	if latest.ModelID() != newID {
		t.Errorf("latest model = %s, want %s", latest.ModelID(), newID)
	}
	if err := latest.Verify(t.Context(), groupScope); err != nil {
		t.Errorf("Verify on the latest model: %v", err)
	}

	cfg := testConfig(srv, storeID)
	cfg.AuthorizationModelID = oldID
	pinned := newSink(t, cfg)
	if pinned.ModelID() != oldID {
		t.Errorf("pinned model = %s, want %s", pinned.ModelID(), oldID)
	}
	if err := pinned.Verify(t.Context(), groupScope); err == nil {
		t.Error("Verify on the pinned model without group#member passed")
	}
	srv.ResetCounts()
	if _, err := pinned.Apply(t.Context(), gsync.Changes{Adds: []gsync.Tuple{member("user:ann", "group:eng")}}); err != nil {
		t.Fatal(err)
	}
	if w := srv.Writes(); len(w) != 1 || w[0].AuthorizationModelID != oldID {
		t.Errorf("writes = %+v, want one naming model %s", w, oldID)
	}
	if n := srv.Requests(fgatest.ReadAuthorizationModels) + srv.Requests(fgatest.ReadAuthorizationModel); n != 0 {
		t.Errorf("Apply looked the model up %d times; it is resolved once in New", n)
	}

	cfg.AuthorizationModelID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
	if _, err := openfga.New(t.Context(), cfg); !errors.Is(err, openfga.ErrModelNotFound) || !strings.Contains(err.Error(), "openfga.authorization_model_id") {
		t.Errorf("missing pinned model: %v", err)
	}
}

func TestVerify(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "groups", "")
	for _, tc := range []struct {
		name, dsl string
		want      string // "" for no error; %s is model id, then store id
	}{
		{"ok", openfga.DefaultModel, ""},
		{"ok with more", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define owner: [user]\n    define member: [user:*, user, group#member, group#owner] or owner\n", ""},
		{"no type", "model\n  schema 1.1\ntype user\ntype team\n  relations\n    define member: [user]\n",
			"authorization model %s (store %s): there is no type \"group\"; add it:\ntype group\n  relations\n    define member: [user, group#member]"},
		{"no relation", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define owner: [user]\n",
			"authorization model %s (store %s): type \"group\" has no relation \"member\"; add it under the type's relations: define member: [user, group#member]"},
		{"no userset", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user]\n",
			"authorization model %s (store %s): relation \"member\" on type \"group\" does not accept \"group#member\"; add it: define member: [user, group#member]"},
		{"wildcard and condition are not enough", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user:*, user with inhours, group#member]\ncondition inhours(h: int) {\n  h < 18\n}\n",
			"authorization model %s (store %s): relation \"member\" on type \"group\" does not accept \"user\"; add it: define member: [user:*, user with inhours, group#member, user]"},
		{"not directly assignable", "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define owner: [user]\n    define member: owner\n",
			"authorization model %s (store %s): relation \"member\" on type \"group\" does not accept \"user\", \"group#member\"; add them: define member: [user, group#member] (keeping the rest of its definition)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelID := srv.WriteModel(t, storeID, tc.dsl)
			s := newSink(t, testConfig(srv, storeID))
			err := s.Verify(t.Context(), groupScope)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if want := fmt.Sprintf(tc.want, modelID, storeID); err == nil || err.Error() != want {
				t.Fatalf("Verify error\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

const wideModel = `model
  schema 1.1
type user
type team
  relations
    define member: [user]
type group
  relations
    define member: [user, group#member, team#member]
    define owner: [user]
type folder
  relations
    define member: [user]
`

func TestReadWholeStore(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "groups", wideModel)
	in := []gsync.Tuple{
		member("user:ann", "group:eng"),
		member("user:bob", "group:eng"),
		member("group:eng#member", "group:all"),
		member("user:cid", "group:all"),
	}
	out := []gsync.Tuple{
		{User: "user:ann", Relation: "owner", Object: "group:eng"}, // other relation
		member("user:ann", "folder:docs"),                          // other object type
		member("team:red#member", "group:eng"),                     // other user type
		member("user:ann", "team:red"),
	}
	srv.WriteTuples(t, storeID, append(slices.Clone(in), out...)...)

	cfg := testConfig(srv, storeID)
	cfg.ReadPageSize = 3
	s := newSink(t, cfg)
	srv.ResetCounts()
	got, err := s.Read(t.Context(), groupScope)
	if err != nil {
		t.Fatal(err)
	}
	wantTuples(t, got, in)
	if n := srv.ReadRequests(); n != 3 { // 8 tuples, 3 a page
		t.Errorf("ReadRequests = %d, want 3", n)
	}
}

func TestReadObjects(t *testing.T) {
	srv := fgatest.New(t)
	storeID, _ := srv.CreateStore(t, "groups", wideModel)
	want := users("group:big", 250)
	for i := range 12 {
		want = append(want, users(fmt.Sprintf("group:g%02d", i), 3)...)
	}
	want = append(want, member("group:g00#member", "group:g01"))
	srv.WriteTuples(t, storeID, want...)
	srv.WriteTuples(t, storeID,
		gsync.Tuple{User: "user:x", Relation: "owner", Object: "group:big"},
		member("team:t#member", "group:g02"),
		member("user:x", "group:notasked"),
	)

	objects := []string{"group:big", "group:empty", "group:big"} // duplicates are read once
	for i := range 12 {
		objects = append(objects, fmt.Sprintf("group:g%02d", i))
	}
	scope := groupScope
	scope.Objects = objects
	cfg := testConfig(srv, storeID)
	cfg.MaxParallelReads = 4
	s := newSink(t, cfg)
	srv.ResetCounts()
	got, err := s.Read(t.Context(), scope)
	if err != nil {
		t.Fatal(err)
	}
	wantTuples(t, got, want)
	if n := srv.ReadRequests(); n != 3+1+12 { // group:big takes 3 pages of 100
		t.Errorf("ReadRequests = %d, want 16", n)
	}

	scope.Objects = []string{}
	if got, err := s.Read(t.Context(), scope); err != nil || len(got) != 0 {
		t.Errorf("Read of no objects = %v, %v", got, err)
	}
}

func TestReadFailsWhole(t *testing.T) {
	srv, storeID, cfg := setup(t)
	srv.WriteTuples(t, storeID, users("group:big", 250)...)
	cfg.MaxRetries = 1
	s := newSink(t, cfg)

	// The third page of the whole store fails, retry included.
	srv.ResetCounts()
	srv.SetFault(fgatest.FailRange(fgatest.Read, 3, 0, fgatest.Fault{Status: http.StatusServiceUnavailable}))
	got, err := s.Read(t.Context(), groupScope)
	if err == nil || got != nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("Read = %d tuples, %v; want no tuples and the 503", len(got), err)
	}

	// One object of many fails: nothing is returned.
	srv.ResetCounts()
	srv.SetFault(fgatest.FailRange(fgatest.Read, 5, 0, fgatest.Fault{Status: http.StatusBadRequest}))
	scope := groupScope
	for i := range 10 {
		scope.Objects = append(scope.Objects, fmt.Sprintf("group:g%d", i))
	}
	got, err = s.Read(t.Context(), scope)
	if err == nil || got != nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("Read = %d tuples, %v; want no tuples and the 400", len(got), err)
	}
	if n := srv.ReadRequests(); n > 10 {
		t.Errorf("a 400 was retried: %d read requests", n)
	}
}

func TestApplyChunks(t *testing.T) {
	srv, storeID, cfg := setup(t)
	s := newSink(t, cfg)
	adds := users("group:eng", 250)
	srv.ResetCounts()
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: adds})
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 250 || res.Requests != 3 || len(res.Failed) != 0 {
		t.Errorf("result = %+v, want 250 added in 3 requests", res)
	}
	if n := srv.WriteRequests(); n != 3 {
		t.Errorf("WriteRequests = %d, want ceil(250/100) = 3", n)
	}
	for _, w := range srv.Writes() {
		if len(w.Writes) > 100 || len(w.Deletes) != 0 || w.OnDuplicate != "ignore" || w.AuthorizationModelID != s.ModelID() {
			t.Errorf("write call %d writes, %d deletes, on_duplicate %q, model %q", len(w.Writes), len(w.Deletes), w.OnDuplicate, w.AuthorizationModelID)
		}
	}
	wantTuples(t, srv.Tuples(t, storeID), adds)
}

func TestApplyIdempotent(t *testing.T) {
	srv, storeID, cfg := setup(t)
	s := newSink(t, cfg)
	present := users("group:eng", 30)
	srv.WriteTuples(t, storeID, present[:10]...)

	changes := gsync.Changes{Adds: present}
	for i := range 2 {
		if res, err := s.Apply(t.Context(), changes); err != nil || res.Added != 30 {
			t.Fatalf("apply %d: %+v, %v", i+1, res, err)
		}
	}
	missing := users("group:gone", 5)
	if res, err := s.Apply(t.Context(), gsync.Changes{Deletes: append(missing, present[:10]...)}); err != nil || res.Deleted != 15 {
		t.Fatalf("deletes with missing tuples: %+v, %v", res, err)
	}
	wantTuples(t, srv.Tuples(t, storeID), present[10:])
	for _, w := range srv.Writes() {
		if len(w.Deletes) > 0 && w.OnMissing != "ignore" {
			t.Errorf("delete call with on_missing %q", w.OnMissing)
		}
	}
}

func TestApplyAddsBeforeDeletes(t *testing.T) {
	srv, storeID, cfg := setup(t)
	old := users("group:old", 200)
	srv.WriteTuples(t, storeID, old...)
	cfg.MaxTuplesPerWrite = 20
	cfg.MaxParallelWrites = 4
	// Slow the first add chunks down, so that a delete sent early would arrive first.
	srv.SetFault(func(r fgatest.Request) *fgatest.Fault {
		if r.Endpoint == fgatest.Write && r.N <= 4 {
			return &fgatest.Fault{Delay: 50 * time.Millisecond}
		}
		return nil
	})
	s := newSink(t, cfg)
	adds := users("group:new", 200)
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: adds, Deletes: old})
	if err != nil || res.Added != 200 || res.Deleted != 200 || res.Requests != 20 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	calls := srv.Writes()
	lastAdd, firstDelete := -1, len(calls)
	for i, c := range calls {
		if (len(c.Writes) == 0) == (len(c.Deletes) == 0) {
			t.Errorf("call %d mixes writes and deletes (or has neither)", i)
		}
		if len(c.Writes) > 0 {
			lastAdd = i
		} else {
			firstDelete = min(firstDelete, i)
		}
	}
	if lastAdd > firstDelete {
		t.Errorf("a delete (call %d) was sent before the last add (call %d)", firstDelete, lastAdd)
	}
	wantTuples(t, srv.Tuples(t, storeID), adds)
}

func TestApplyRetryAfter(t *testing.T) {
	srv, storeID, cfg := setup(t, fgatest.WithFault(fgatest.FailNth(fgatest.Write, 1, fgatest.Fault{
		Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"1"}},
	})))
	s := newSink(t, cfg)
	start := time.Now()
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: users("group:eng", 5)})
	if err != nil || res.Added != 5 || res.Requests != 2 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v; Retry-After said 1s", d)
	}
	if len(srv.Tuples(t, storeID)) != 5 {
		t.Error("tuples not written")
	}
}

func TestApplyRetries500Burst(t *testing.T) {
	srv, storeID, cfg := setup(t, fgatest.WithFault(fgatest.FailRange(fgatest.Write, 1, 3, fgatest.Fault{Status: http.StatusInternalServerError})))
	cfg.MaxRetries = 3
	s := newSink(t, cfg)
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: users("group:eng", 5)})
	if err != nil || res.Added != 5 || res.Requests != 4 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if len(srv.Tuples(t, storeID)) != 5 {
		t.Error("tuples not written")
	}
}

func TestApplyPersistent500(t *testing.T) {
	srv, storeID, cfg := setup(t)
	existing := users("group:keep", 3)
	srv.WriteTuples(t, storeID, existing...)
	cfg.MaxRetries = 2
	cfg.MaxTuplesPerWrite = 10
	s := newSink(t, cfg)
	srv.SetFault(fgatest.FailRange(fgatest.Write, 1, 0, fgatest.Fault{Status: http.StatusInternalServerError}))

	adds := users("group:eng", 15)
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: adds, Deletes: existing})
	if err == nil || !strings.Contains(err.Error(), "18 of 18") || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("err = %v", err)
	}
	if res.Added != 0 || res.Deleted != 0 || len(res.Failed) != 18 || res.Requests != 3*3 {
		t.Errorf("result = %+v, want 18 failed after 3 chunks of 3 attempts", res)
	}
	for i, f := range res.Failed {
		wantOp := "add"
		if i >= 15 {
			wantOp = "delete"
		}
		if f.Op != wantOp || !strings.Contains(f.Error, "HTTP 500") || !strings.Contains(f.Error, "after 3 attempts") {
			t.Errorf("failed[%d] = %+v", i, f)
		}
	}
	wantTuples(t, srv.Tuples(t, storeID), existing)
}

func TestApplyBisectsInvalidTuples(t *testing.T) {
	srv, storeID, cfg := setup(t)
	s := newSink(t, cfg)
	good := users("group:eng", 150)
	badObject := member("user:ann", "group:has space")
	badType := member("robot:r2", "group:eng") // not a type the relation accepts
	adds := slices.Concat(good[:37], []gsync.Tuple{badObject}, good[37:120], []gsync.Tuple{badType}, good[120:])

	srv.ResetCounts()
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: adds})
	if err == nil || !strings.Contains(err.Error(), "2 of 152") {
		t.Errorf("err = %v", err)
	}
	if res.Added != 150 || len(res.Failed) != 2 {
		t.Fatalf("result = %+v", res)
	}
	for _, f := range res.Failed {
		if f.Op != "add" || (f.Tuple != badObject && f.Tuple != badType) || !strings.Contains(f.Error, "HTTP 400") {
			t.Errorf("failed = %+v", f)
		}
	}
	if res.Requests != srv.WriteRequests() || res.Requests > 2+2*2*7 {
		t.Errorf("Requests = %d, server saw %d", res.Requests, srv.WriteRequests())
	}
	wantTuples(t, srv.Tuples(t, storeID), good)
}

func TestApplyStopsWhenCancelled(t *testing.T) {
	srv, storeID, cfg := setup(t)
	cfg.MaxParallelWrites = 1
	s := newSink(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The second write request cancels the run as it arrives.
	srv.SetFault(func(r fgatest.Request) *fgatest.Fault {
		if r.Endpoint == fgatest.Write && r.N == 2 {
			cancel()
			return &fgatest.Fault{Delay: time.Second}
		}
		return nil
	})
	adds := users("group:eng", 300)
	res, err := s.Apply(ctx, gsync.Changes{Adds: adds, Deletes: users("group:old", 10)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if res.Added != 100 || len(res.Failed) != 210 || res.Requests != 2 {
		t.Errorf("result: added %d, failed %d, requests %d; want 100, 210, 2", res.Added, len(res.Failed), res.Requests)
	}
	if n := srv.WriteRequests(); n != 2 {
		t.Errorf("server saw %d writes after the cancel, want 2", n)
	}
	if got := srv.Tuples(t, storeID); len(got) != 100 {
		t.Errorf("store holds %d tuples, want the first chunk's 100", len(got))
	}

	// Already cancelled: nothing is sent.
	res, err = s.Apply(ctx, gsync.Changes{Adds: adds})
	if !errors.Is(err, context.Canceled) || res.Requests != 0 || len(res.Failed) != 300 {
		t.Errorf("Apply on a done ctx: %+v, %v", res.Requests, err)
	}
}

func TestAPIToken(t *testing.T) {
	const token = "s3cret-token"
	srv := fgatest.New(t, fgatest.WithPresharedKeys(token))
	// Seeded through the server, not HTTP: no token needed.
	storeID, _ := srv.CreateStore(t, "groups", openfga.DefaultModel)

	cfg := testConfig(srv, storeID)
	cfg.Auth = config.Auth{Method: "api_token", APIToken: token}
	s := newSink(t, cfg)
	if _, err := s.Apply(t.Context(), gsync.Changes{Adds: users("group:eng", 3)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(t.Context(), groupScope); err != nil || len(got) != 3 {
		t.Fatalf("Read = %v, %v", got, err)
	}

	cfg.Auth.APIToken = "wrong-" + token
	_, err := openfga.New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || strings.Contains(err.Error(), token) {
		t.Errorf("wrong token: %v", err)
	}
	if n := srv.Requests(fgatest.GetStore); n != 2 {
		t.Errorf("GetStore requests = %d, want 2 (a 401 is not retried)", n)
	}

	cfg.Auth = config.Auth{Method: "none"}
	if _, err := openfga.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "bearer_token_missing") {
		t.Errorf("no token: %v", err)
	}
}

func TestClientCredentials(t *testing.T) {
	const secret = "client-s3cret"
	var sawSecret, sawAudience atomic.Bool
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = r.Form.Get("client_id"), r.Form.Get("client_secret")
		}
		sawSecret.Store(id == "groupsync" && sec == secret)
		sawAudience.Store(r.Form.Get("audience") == "https://fga.example")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"issued-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer issuer.Close()
	srv := fgatest.New(t, fgatest.WithPresharedKeys("issued-token"))
	storeID, _ := srv.CreateStore(t, "groups", openfga.DefaultModel)

	cfg := testConfig(srv, storeID)
	cfg.Auth = config.Auth{Method: "client_credentials", ClientID: "groupsync", ClientSecret: secret,
		TokenIssuer: issuer.URL + "/oauth/token", Audience: "https://fga.example"}
	s := newSink(t, cfg)
	if _, err := s.Read(t.Context(), groupScope); err != nil {
		t.Fatal(err)
	}
	if !sawSecret.Load() || !sawAudience.Load() {
		t.Errorf("token request: secret %v, audience %v", sawSecret.Load(), sawAudience.Load())
	}
}

func TestNetworkErrorsRetried(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	cfg := config.Default().OpenFGA
	cfg.APIURL = url
	cfg.StoreName = "groups"
	cfg.MaxRetries = 2
	cfg.RetryMinWait = config.Duration(time.Millisecond)
	_, err := openfga.New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "openfga ListStores ("+url+")") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("err = %v", err)
	}
}

func TestEnsureStore(t *testing.T) {
	srv := fgatest.New(t)
	cfg := testConfig(srv, "")
	cfg.StoreName = "groupsync"

	storeID, modelID, created, err := openfga.EnsureStore(t.Context(), cfg, "")
	if err != nil || !created || storeID == "" || modelID == "" {
		t.Fatalf("first EnsureStore = %q %q %v %v", storeID, modelID, created, err)
	}
	s := newSink(t, cfg)
	if s.StoreID() != storeID || s.ModelID() != modelID {
		t.Errorf("sink uses %s/%s, EnsureStore made %s/%s", s.StoreID(), s.ModelID(), storeID, modelID)
	}
	if err := s.Verify(t.Context(), groupScope); err != nil {
		t.Errorf("the default model does not verify: %v", err)
	}

	// Same model, written differently: nothing to do.
	again := strings.ReplaceAll(openfga.DefaultModel, "[user, group#member]", "[user,group#member]")
	id2, model2, created, err := openfga.EnsureStore(t.Context(), cfg, again)
	if err != nil || created || id2 != storeID || model2 != modelID {
		t.Fatalf("second EnsureStore = %q %q %v %v", id2, model2, created, err)
	}

	// A changed model is written, into the same store, now by id.
	cfg.StoreName, cfg.StoreID = "", storeID
	su, err := openfga.EnsureSetup(t.Context(), cfg, wideModel)
	if err != nil || su.StoreCreated || !su.ModelWritten || su.StoreID != storeID || su.ModelID == modelID {
		t.Fatalf("EnsureSetup with a new model = %+v, %v", su, err)
	}
	if s := newSink(t, cfg); s.ModelID() != su.ModelID {
		t.Errorf("latest model = %s, want %s", s.ModelID(), su.ModelID)
	}
	if again, err := openfga.EnsureSetup(t.Context(), cfg, wideModel); err != nil || again.ModelWritten || again.ModelID != su.ModelID {
		t.Errorf("EnsureSetup again = %+v, %v", again, err)
	}

	if _, _, _, err := openfga.EnsureStore(t.Context(), cfg, "model\n  schema 1.1\ntype"); err == nil {
		t.Error("a broken model was accepted")
	}
	cfg.StoreID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
	if _, _, _, err := openfga.EnsureStore(t.Context(), cfg, ""); !errors.Is(err, openfga.ErrStoreNotFound) {
		t.Errorf("EnsureStore with a missing store id: %v", err)
	}
}

// roundTripCounter counts the requests it passes on.
type roundTripCounter struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *roundTripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestTransportWrapper(t *testing.T) {
	srv, _, cfg := setup(t)
	cfg.MaxParallelReads, cfg.MaxParallelWrites = 3, 7
	var built *http.Transport
	counter := &roundTripCounter{}
	s, err := openfga.New(t.Context(), cfg, openfga.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
		built, _ = rt.(*http.Transport)
		counter.base = rt
		return counter
	}))
	if err != nil {
		t.Fatal(err)
	}
	if built == nil || built.MaxIdleConnsPerHost != 7 {
		t.Fatalf("the wrapper got %#v, want the sink's own transport with a connection per write", built)
	}
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: users("group:eng", 5)})
	if err != nil || res.Added != 5 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	// GetStore, ReadAuthorizationModels, Write.
	if n := counter.n.Load(); n != 3 || n != int64(srv.Requests(fgatest.GetStore)+srv.Requests(fgatest.ReadAuthorizationModels)+srv.WriteRequests()) {
		t.Errorf("the wrapper saw %d requests", n)
	}

	// With a client of the caller's, the wrapper wraps that client's transport.
	own := &roundTripCounter{base: http.DefaultTransport}
	wrapped := &roundTripCounter{}
	_, err = openfga.New(t.Context(), cfg, openfga.WithHTTPClient(&http.Client{Transport: own}),
		openfga.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper { wrapped.base = rt; return wrapped }))
	if err != nil || own.n.Load() != 2 || wrapped.n.Load() != 2 || wrapped.base != own {
		t.Errorf("with WithHTTPClient: %v, own %d, wrapped %d", err, own.n.Load(), wrapped.n.Load())
	}
}

// A server that takes fewer tuples a write than openfga.max_tuples_per_write:
// the refused chunk is split to fit, the sink remembers the limit (later
// chunks, and a later Apply, are split before they are sent), and every
// Apply that had to split says what to set the setting to.
func TestApplyLearnsTheServersWriteLimit(t *testing.T) {
	srv, storeID, cfg := setup(t, fgatest.WithMaxTuplesPerWrite(3))
	cfg.MaxTuplesPerWrite = 5
	cfg.MaxParallelWrites = 1
	s := newSink(t, cfg)
	refused := func() int {
		n := 0
		for _, w := range srv.Writes() {
			if w.Status == 400 {
				n++
			}
		}
		return n
	}
	const want = "openfga.max_tuples_per_write is 5, above the server's --max-tuples-per-write; set it to at most 3"
	first := users("group:a", 20)
	res, err := s.Apply(t.Context(), gsync.Changes{Adds: first})
	if err != nil || res.Added != 20 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], want) {
		t.Fatalf("first Apply = %+v, %v", res, err)
	}
	if n := refused(); n != 1 {
		t.Errorf("%d writes refused; after the first, chunks are split before they are sent", n)
	}
	second := users("group:b", 20)
	res, err = s.Apply(t.Context(), gsync.Changes{Adds: second, Deletes: first})
	if err != nil || res.Added != 20 || res.Deleted != 20 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], want) {
		t.Fatalf("second Apply = %+v, %v", res, err)
	}
	if n := refused(); n != 1 {
		t.Errorf("%d writes refused in all; the second Apply knew the limit", n)
	}
	wantTuples(t, srv.Tuples(t, storeID), second)
	// A setting within the limit: no warning.
	cfg.MaxTuplesPerWrite = 3
	res, err = newSink(t, cfg).Apply(t.Context(), gsync.Changes{Adds: users("group:c", 7)})
	if err != nil || len(res.Warnings) != 0 {
		t.Fatalf("Apply within the limit = %+v, %v", res, err)
	}
}

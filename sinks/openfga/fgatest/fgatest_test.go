package fgatest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	gsync "github.com/groupsync/groupsync/sync"
)

func post(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestServerSpeaksOpenFGA(t *testing.T) {
	srv := fgatest.New(t)

	if code, m := post(t, srv.URL+"/stores", "", `{"name":"made over http"}`); code != http.StatusCreated || m["id"] == "" {
		t.Fatalf("create store: %d %v, want 201 with an id", code, m)
	}
	storeID, modelID := srv.CreateStore(t, "groups", fgatest.GroupModel)
	if storeID == "" || modelID == "" {
		t.Fatalf("CreateStore gave %q %q", storeID, modelID)
	}

	write := `{"writes":{"tuple_keys":[{"user":"user:ann","relation":"member","object":"group:eng"}]},"authorization_model_id":"` + modelID + `"}`
	if code, m := post(t, srv.URL+"/stores/"+storeID+"/write", "", write); code != http.StatusOK {
		t.Fatalf("write: %d %v", code, m)
	}
	// The same write again, without on_duplicate: ignore, is a 400.
	if code, m := post(t, srv.URL+"/stores/"+storeID+"/write", "", write); code != http.StatusBadRequest || m["code"] != "write_failed_due_to_invalid_input" {
		t.Fatalf("duplicate write: %d %v, want 400 write_failed_due_to_invalid_input", code, m)
	}
	bad := `{"writes":{"tuple_keys":[{"user":"user:ann","relation":"member","object":"group:has space"}]}}`
	if code, m := post(t, srv.URL+"/stores/"+storeID+"/write", "", bad); code != http.StatusBadRequest {
		t.Fatalf("invalid object: %d %v, want 400", code, m)
	}
	// Read does not check that the store exists (200, no tuples); GetStore does.
	resp, err := http.Get(srv.URL + "/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("get a missing store: %d, want 404", resp.StatusCode)
	}

	srv.WriteTuples(t, storeID,
		gsync.Tuple{User: "user:bob", Relation: "member", Object: "group:eng"},
		gsync.Tuple{User: "group:eng#member", Relation: "member", Object: "group:all"},
	)
	want := []gsync.Tuple{
		{User: "group:eng#member", Relation: "member", Object: "group:all"},
		{User: "user:ann", Relation: "member", Object: "group:eng"},
		{User: "user:bob", Relation: "member", Object: "group:eng"},
	}
	if got := srv.Tuples(t, storeID); !slices.Equal(got, want) {
		t.Fatalf("Tuples = %v, want %v", got, want)
	}
	srv.DeleteTuples(t, storeID, want[0])
	if got := srv.Tuples(t, storeID); len(got) != 2 {
		t.Fatalf("after delete: %v", got)
	}

	if n := srv.WriteRequests(); n != 3 {
		t.Errorf("WriteRequests = %d, want 3 (helpers are not counted)", n)
	}
	if n := srv.Requests(fgatest.CreateStore); n != 1 {
		t.Errorf("Requests(CreateStore) = %d, want 1", n)
	}
	calls := srv.Writes()
	if len(calls) != 3 || calls[0].Status != 200 || calls[1].Status != 400 || calls[0].AuthorizationModelID != modelID ||
		!slices.Equal(calls[0].Writes, []gsync.Tuple{{User: "user:ann", Relation: "member", Object: "group:eng"}}) {
		t.Errorf("Writes = %+v", calls)
	}
}

func TestFaults(t *testing.T) {
	srv := fgatest.New(t, fgatest.WithFault(fgatest.FailNth(fgatest.Write, 2, fgatest.Fault{
		Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"3"}},
	})))
	storeID, _ := srv.CreateStore(t, "groups", fgatest.GroupModel)
	url := srv.URL + "/stores/" + storeID + "/write"
	w := func(user string) string {
		return `{"writes":{"tuple_keys":[{"user":"` + user + `","relation":"member","object":"group:eng"}]}}`
	}

	if code, _ := post(t, url, "", w("user:a")); code != 200 {
		t.Fatalf("first write: %d", code)
	}
	if code, m := post(t, url, "", w("user:b")); code != http.StatusTooManyRequests || m["code"] != "rate_limit_exceeded" {
		t.Fatalf("second write: %d %v, want the injected 429", code, m)
	}
	if code, _ := post(t, url, "", w("user:c")); code != 200 {
		t.Fatalf("third write: %d", code)
	}
	if got := srv.Tuples(t, storeID); len(got) != 2 {
		t.Fatalf("the faulted write reached the server: %v", got)
	}

	srv.SetFault(fgatest.FailRange(fgatest.Write, 4, 0, fgatest.Fault{Status: 500}))
	for range 2 {
		if code, _ := post(t, url, "", w("user:d")); code != 500 {
			t.Fatalf("write after SetFault: %d, want 500", code)
		}
	}
	srv.SetFault(nil)
	if code, _ := post(t, url, "", w("user:d")); code != 200 {
		t.Fatalf("write after SetFault(nil): %d", code)
	}
}

func TestPresharedKeys(t *testing.T) {
	srv := fgatest.New(t, fgatest.WithPresharedKeys("k1", "k2"))
	if code, m := post(t, srv.URL+"/stores", "", `{"name":"x store"}`); code != 401 || m["code"] != "bearer_token_missing" {
		t.Errorf("no token: %d %v", code, m)
	}
	if code, m := post(t, srv.URL+"/stores", "nope", `{"name":"x store"}`); code != 401 || m["code"] != "unauthenticated" {
		t.Errorf("wrong token: %d %v", code, m)
	}
	if code, m := post(t, srv.URL+"/stores", "k2", `{"name":"x store"}`); code != 201 {
		t.Errorf("good token: %d %v", code, m)
	}
}

func TestDropFaultClosesTheConnection(t *testing.T) {
	srv := fgatest.New(t, fgatest.WithFault(fgatest.FailNth(fgatest.ListStores, 1, fgatest.Fault{Drop: true})))
	if _, err := http.Get(srv.URL + "/stores"); err == nil {
		t.Fatal("a dropped request got an answer")
	}
	resp, err := http.Get(srv.URL + "/stores")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("next request: %v %v", resp, err)
	}
	resp.Body.Close()
}

package state

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/groupsync/groupsync/config"
)

func TestMemory(t *testing.T) {
	ctx := context.Background()
	a, b := Shared("x"), Shared("x")
	if a != b || Shared("y") == a {
		t.Fatal("Shared must return one store per name")
	}
	if got, err := a.Load(ctx); got != nil || err != nil {
		t.Fatalf("empty: %q %v", got, err)
	}
	data := []byte("hello")
	a.Save(ctx, data)
	data[0] = 'j' // the store keeps its own copy
	if got, _ := b.Load(ctx); string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
}

func TestFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state")
	f := NewFile(path)
	if got, err := f.Load(ctx); got != nil || err != nil {
		t.Fatalf("missing file: %q %v", got, err)
	}
	for _, s := range []string{"first", "second, longer"} {
		if err := f.Save(ctx, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Load(ctx); string(got) != s || err != nil {
			t.Fatalf("got %q %v", got, err)
		}
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := NewFile(filepath.Join(t.TempDir(), "no", "dir")).Save(ctx, []byte("x")); err == nil || !strings.Contains(err.Error(), "source.msgraph.delta.state.path") {
		t.Fatalf("err %v", err)
	}
}

func TestNewFromConfig(t *testing.T) {
	if s, err := New(config.DeltaState{Type: "memory", Name: "n"}); err != nil || s != Shared("n") {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := New(config.DeltaState{Type: "file"}); err == nil || !strings.Contains(err.Error(), "state.path") {
		t.Fatalf("err %v", err)
	}
	// Outside a pod the store exists, and every use says why it cannot work.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	s, err := New(config.DeltaState{Type: "configmap", Name: "n", Namespace: "ns"})
	if err != nil || s.String() != "configmap n" {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := s.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "not running in a Kubernetes pod") {
		t.Fatalf("load: %v", err)
	}
	if err := s.Save(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "source.msgraph.delta.state") {
		t.Fatalf("save: %v", err)
	}
}

// apiServer is a small fake of the Kubernetes API for ConfigMaps and
// Secrets: get, update (PUT), create (POST), the 1 MiB limit, a bearer
// token, and optional refusals by name.
type apiServer struct {
	*httptest.Server
	token   string
	mu      sync.Mutex
	objects map[string][]byte // resource/ns/name → JSON
	forbid  func(method, name string) bool
	writes  int
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{token: "sa-token", objects: map[string][]byte{}}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "status": "Failure", "reason": reason, "message": msg, "code": code})
}

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		status(w, 401, "Unauthorized", "Unauthorized")
		return
	}
	// /api/v1/namespaces/{ns}/{resource}[/{name}]
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/"), "/")
	if len(seg) < 2 || (seg[1] != "configmaps" && seg[1] != "secrets") {
		status(w, 404, "NotFound", "no such path")
		return
	}
	ns, res := seg[0], seg[1]
	name := ""
	if len(seg) == 3 {
		name = seg[2]
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.forbid != nil && a.forbid(r.Method, name) {
		status(w, 403, "Forbidden", fmt.Sprintf(`%s "%s" is forbidden: User "system:serviceaccount:%s:groupsync" cannot %s resource "%s"`, res, name, ns, strings.ToLower(r.Method), res))
		return
	}
	key := res + "/" + ns + "/"
	switch r.Method {
	case http.MethodGet:
		b, ok := a.objects[key+name]
		if !ok {
			status(w, 404, "NotFound", res+" "+name+" not found")
			return
		}
		w.Write(b)
	case http.MethodPut, http.MethodPost:
		body, _ := io.ReadAll(r.Body)
		var o object
		if err := json.Unmarshal(body, &o); err != nil {
			status(w, 400, "BadRequest", err.Error())
			return
		}
		if r.Method == http.MethodPut && o.Metadata.Name != name {
			status(w, 400, "BadRequest", "name mismatch")
			return
		}
		size := 0
		for k, v := range o.Data {
			size += len(k) + len(v)
		}
		for k, v := range o.BinaryData {
			size += len(k) + len(v)
		}
		if size > MaxObjectBytes {
			status(w, 422, "Invalid", fmt.Sprintf(`%s "%s" is invalid: []: Too long: must have at most 1048576 bytes`, res, o.Metadata.Name))
			return
		}
		_, exists := a.objects[key+o.Metadata.Name]
		if r.Method == http.MethodPut && !exists {
			status(w, 404, "NotFound", "not found")
			return
		}
		if r.Method == http.MethodPost && exists {
			status(w, 409, "AlreadyExists", "already exists")
			return
		}
		a.objects[key+o.Metadata.Name] = body
		a.writes++
		w.WriteHeader(map[bool]int{true: 200, false: 201}[r.Method == http.MethodPut])
		w.Write(body)
	default:
		status(w, 405, "MethodNotAllowed", "no")
	}
}

func (a *apiServer) store(t *testing.T, kind string, partSize int) *Kubernetes {
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte(a.token+"\n"), 0o600)
	k, err := NewKubernetes(KubernetesOptions{Kind: kind, Namespace: "sync", Name: "groupsync-delta-state",
		APIURL: a.URL, TokenFile: tok, Client: a.Client(), PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKubernetesRoundTripAndSplit(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"configmap", "secret"} {
		t.Run(kind, func(t *testing.T) {
			a := newAPIServer(t)
			k := a.store(t, kind, 0)
			if got, err := k.Load(ctx); got != nil || err != nil {
				t.Fatalf("none yet: %v %v", got, err)
			}
			big := make([]byte, 3*MaxObjectBytes+12345) // random: incompressible, as a gzip blob is
			rand.Read(big)
			if err := k.Save(ctx, big); err != nil {
				t.Fatal(err)
			}
			if len(a.objects) != 4 {
				t.Fatalf("%d objects for %d bytes", len(a.objects), len(big))
			}
			got, err := k.Load(ctx)
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("round trip: %d bytes, %v", len(got), err)
			}
			// A smaller state later: the leftover parts are ignored.
			if err := k.Save(ctx, []byte("small")); err != nil {
				t.Fatal(err)
			}
			if got, err := k.Load(ctx); string(got) != "small" || err != nil {
				t.Fatalf("got %q %v", got, err)
			}
			if kind == "secret" && !strings.Contains(string(a.objects["secrets/sync/groupsync-delta-state"]), `"type":"Opaque"`) {
				t.Fatalf("secret: %s", a.objects["secrets/sync/groupsync-delta-state"])
			}
		})
	}
}

func TestKubernetesTornWriteIsCorrupt(t *testing.T) {
	ctx := context.Background()
	a := newAPIServer(t)
	k := a.store(t, "configmap", 1000)
	first := bytes.Repeat([]byte("a"), 2500)
	if err := k.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The next save dies after writing its parts, before the head.
	a.forbid = func(method, name string) bool { return method == http.MethodPut && name == "groupsync-delta-state" }
	err := k.Save(ctx, bytes.Repeat([]byte("b"), 2500))
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "docs/entra.md") || strings.Contains(err.Error(), a.token) {
		t.Fatalf("save: %v", err)
	}
	a.forbid = nil
	if _, err := k.Load(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("load after a torn save: %v", err)
	}
	// A damaged head.
	a.objects["configmaps/sync/groupsync-delta-state"] = []byte(`{"kind":"ConfigMap","metadata":{"name":"groupsync-delta-state"},"binaryData":{"state":"AAAA"}}`)
	if _, err := k.Load(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("load of a damaged head: %v", err)
	}
	// One created empty ahead of time (kubectl create configmap): no state yet.
	a.objects["configmaps/sync/groupsync-delta-state"] = []byte(`{"kind":"ConfigMap","metadata":{"name":"groupsync-delta-state"}}`)
	if got, err := k.Load(ctx); got != nil || err != nil {
		t.Fatalf("load of an empty object: %q %v", got, err)
	}
}

func TestKubernetesErrors(t *testing.T) {
	ctx := context.Background()
	a := newAPIServer(t)
	k := a.store(t, "configmap", 0)
	a.forbid = func(string, string) bool { return true }
	_, err := k.Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), `configmaps "groupsync-delta-state"`) {
		t.Fatalf("load: %v", err)
	}
	a.forbid = nil
	a.token = "rotated"
	if err := k.Save(ctx, []byte("x")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("save with a stale token: %v", err)
	}
	// A part over the limit is refused by the API server, naming it.
	k.o.PartSize = 2 * MaxObjectBytes
	a.token = "sa-token"
	if err := k.Save(ctx, make([]byte, MaxObjectBytes+1)); err == nil || !strings.Contains(err.Error(), "Too long") {
		t.Fatalf("oversized: %v", err)
	}
}

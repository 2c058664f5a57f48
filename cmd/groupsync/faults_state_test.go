package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sources/msgraph"
	"github.com/groupsync/groupsync/state"
	gsync "github.com/groupsync/groupsync/sync"
)

// Fault scenarios of the delta state store: the Entra ID source reads
// incrementally and keeps its state after each successful apply; the
// store fails, or the run is stopped, while the state is being saved.

const deltaBlock = "    max_retry_wait: 20s\n"

// withDelta turns delta queries on with the given state section.
func withDelta(stateYAML string) envOpt {
	return withYAML(deltaBlock, deltaBlock+"    delta:\n      enabled: true\n      full_sync_every: 0s\n      state:\n"+stateYAML)
}

// kubeAPI is the Kubernetes API's part the ConfigMap store speaks to:
// get, update (PUT) and create (POST) of ConfigMaps in one namespace, with
// Kubernetes' Status bodies; fault, when set, answers a write instead.
type kubeAPI struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	fault   func(r *http.Request) (status int, reason, msg string)
	puts    int
}

func newKubeAPI(t *testing.T) *kubeAPI {
	k := &kubeAPI{objects: map[string][]byte{}}
	k.Server = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.Close)
	return k
}

func kubeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code})
}

func (k *kubeAPI) setFault(f func(r *http.Request) (int, string, string)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fault = f
}

func (k *kubeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer sa-token" {
		kubeStatus(w, 401, "Unauthorized", "Unauthorized")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/namespaces/groupsync/configmaps")
	if !ok {
		kubeStatus(w, 404, "NotFound", "the server could not find the requested resource")
		return
	}
	name := strings.TrimPrefix(rest, "/")
	k.mu.Lock()
	fault := k.fault
	k.mu.Unlock()
	if fault != nil && r.Method != http.MethodGet {
		if code, reason, msg := fault(r); code != 0 {
			kubeStatus(w, code, reason, msg)
			return
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		b, ok := k.objects[name]
		if !ok {
			kubeStatus(w, 404, "NotFound", fmt.Sprintf("configmaps %q not found", name))
			return
		}
		_, _ = w.Write(b)
	case http.MethodPut, http.MethodPost:
		body, _ := io.ReadAll(r.Body)
		var o struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		if err := json.Unmarshal(body, &o); err != nil {
			kubeStatus(w, 400, "BadRequest", err.Error())
			return
		}
		_, exists := k.objects[o.Metadata.Name]
		if r.Method == http.MethodPut && !exists {
			kubeStatus(w, 404, "NotFound", fmt.Sprintf("configmaps %q not found", name))
			return
		}
		if r.Method == http.MethodPost && exists {
			kubeStatus(w, 409, "AlreadyExists", fmt.Sprintf("configmaps %q already exists", o.Metadata.Name))
			return
		}
		k.objects[o.Metadata.Name] = body
		k.puts++
		w.WriteHeader(map[bool]int{true: 200, false: 201}[r.Method == http.MethodPut])
		_, _ = w.Write(body)
	default:
		kubeStatus(w, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
	}
}

// deltaRun is one `groupsync apply` in process, its source and sink wired
// as newEngine wires them but with the ConfigMap store pointed at the fake
// API server (the CLI finds the API server only inside a pod). It keeps no
// OpenFGA-side incremental state: these rows are about the Graph state.
type deltaRun struct {
	code int
	rep  *gsync.Report
	read gsync.SourceRead
	logs *observer.ObservedLogs
	err  error
}

func runDelta(ctx context.Context, t *testing.T, e *faultEnv, store state.Store, extra ...string) deltaRun {
	t.Helper()
	cfg, err := config.Load(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	log := zap.New(core)
	src, err := msgraph.New(cfg.Source.MSGraph, msgraph.WithLogger(log), msgraph.WithMapping(cfg.Mapping), msgraph.WithStateStore(store))
	if err != nil {
		t.Fatal(err)
	}
	sink, err := openfga.New(ctx, cfg.OpenFGA)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := gsync.New(cfg, src, newTarget(cfg, sink, nil), log)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(ctx, true)
	r := deltaRun{rep: rep, read: src.LastRead(), logs: logs, err: err}
	if err != nil {
		r.code = 1
	}
	return r
}

// kubeStateRow: a ConfigMap store whose writes fail (fault) or whose save
// is interrupted by SIGTERM (sigterm) after a successful apply.
func kubeStateRow(t *testing.T, name, fault string, code int, reason, msg string, sigterm bool) outcome {
	o := outcome{scenario: name, fault: fault, exit: "not run"}
	t.Run(name, func(t *testing.T) {
		e := newFaultEnv(t, withDelta("        type: configmap\n        namespace: groupsync\n        name: groupsync-delta-state\n"))
		api := newKubeAPI(t)
		tok := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tok, []byte("sa-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Small parts, so that the state spans several ConfigMaps and an
		// interrupted save can tear it.
		store, err := state.NewKubernetes(state.KubernetesOptions{Kind: "configmap", Namespace: "groupsync", Name: "groupsync-delta-state",
			APIURL: api.URL, TokenFile: tok, Client: api.Client(), PartSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if r := runDelta(ctx, t, e, store); r.err != nil || r.read.Mode != "full" || api.puts == 0 {
			t.Fatalf("baseline: %v, read %+v, %d writes", r.err, r.read, api.puts)
		}
		if err := e.graph.Mutate(change); err != nil {
			t.Fatal(err)
		}
		before := e.tuples()
		e.fga.ResetCounts()
		var r deltaRun
		if sigterm {
			// SIGTERM while the 2nd ConfigMap write of the save is in
			// flight: the run's context ends, as `groupsync apply`'s does
			// (signal.NotifyContext in run).
			sctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
			defer stop()
			var n int
			var mu sync.Mutex
			api.setFault(func(r *http.Request) (int, string, string) {
				mu.Lock()
				n++
				second := n == 2
				mu.Unlock()
				if second {
					// The body read, the server notices the client leave.
					_, _ = io.Copy(io.Discard, r.Body)
					_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
					select {
					case <-r.Context().Done():
					case <-time.After(20 * time.Second):
						t.Error("the save went on for 20 s after SIGTERM")
					}
				}
				return 0, "", ""
			})
			r = runDelta(sctx, t, e, store)
			stop()
		} else {
			api.setFault(func(*http.Request) (int, string, string) { return code, reason, msg })
			r = runDelta(ctx, t, e, store)
		}
		o.exit = fmt.Sprint(r.code)
		if r.err != nil || r.read.Mode != "incremental" {
			t.Errorf("faulted run: %v, read %+v", r.err, r.read)
		}
		saved := r.logs.FilterMessageSnippet("incremental state was not saved").All()
		if len(saved) != 1 {
			t.Errorf("no warning that the state was not saved: %v", r.logs.All())
		} else if errText := fmt.Sprint(saved[0].ContextMap()["error"]); code != 0 && !strings.Contains(errText, fmt.Sprintf("HTTP %d", code)) {
			t.Errorf("the warning's error %q does not name HTTP %d", errText, code)
		} else {
			t.Logf("warning: %s", errText)
		}
		api.setFault(nil)
		// The rerun goes through the same store.
		var rerun deltaRun
		e.rerun = func(...string) (int, *gsync.Report) {
			rerun = runDelta(ctx, t, e, store)
			return rerun.code, rerun.rep
		}
		e.check(&o, before, r.rep)
		switch {
		case sigterm && (rerun.read.Mode != "full" || !strings.Contains(rerun.read.Reason, "damaged")):
			t.Errorf("rerun after a torn save: read %+v, want a full read because the state is damaged", rerun.read)
		case !sigterm && rerun.read.Mode != "incremental":
			t.Errorf("rerun: read %+v, want incremental from the state saved before", rerun.read)
		}
		o.notes = fmt.Sprintf("exit 0, the apply stands; warning \"the source's incremental state was not saved\"; the rerun reads %s (%s) and converges", rerun.read.Mode, rerunWhy(rerun.read))
	})
	return o
}

func rerunWhy(r gsync.SourceRead) string {
	if r.Mode == "incremental" {
		return "from the state the run before saved, so the faulted run's changes are read again"
	}
	return r.Reason
}

// fileStateRow: the state file's directory is not writable during the
// faulted run. The runs are the real binary as user nobody (uid 65534):
// the suite runs as root, which a read-only mode would not stop.
func fileStateRow(t *testing.T) outcome {
	o := outcome{scenario: "delta state file not writable", fault: "the state file's directory turns read-only (mode 0555, runs as uid 65534) after the baseline run", exit: "not run"}
	t.Run(o.scenario, func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run groupsync as another user")
		}
		dir, err := os.MkdirTemp("", "groupsync-state")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700); _ = os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		statePath := filepath.Join(dir, "delta-state")
		e := newFaultEnv(t, withDelta("        type: file\n        path: "+statePath+"\n"))
		cfg := filepath.Join(dir, "groupsync.yaml")
		b, err := os.ReadFile(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		e.cfg = cfg
		// A copy of the binary that uid 65534 may run.
		bin := filepath.Join(dir, "groupsync")
		if b, err := os.ReadFile(groupsyncBinary(t)); err != nil || os.WriteFile(bin, b, 0o755) != nil {
			t.Fatalf("copy the binary: %v", err)
		}
		asNobody := func() (int, *gsync.Report, string) {
			cmd := exec.Command(bin, "apply", "-c", cfg, "-o", "json", "--log-level=warn", "--log-format=json")
			cmd.Env = append(os.Environ(), "GROUPSYNC_SOURCE_MSGRAPH_TOKEN="+e.graph.Token())
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			var rep gsync.Report
			if json.Unmarshal([]byte(stdout.String()), &rep) != nil {
				return code, nil, stderr.String()
			}
			return code, &rep, stderr.String()
		}
		if code, rep, errOut := asNobody(); code != 0 || rep.SourceRead == nil || rep.SourceRead.Mode != "full" {
			t.Fatalf("baseline: exit %d %s", code, errOut)
		}
		if _, err := os.Stat(statePath); err != nil {
			t.Fatalf("baseline saved no state: %v", err)
		}
		if err := e.graph.Mutate(change); err != nil {
			t.Fatal(err)
		}
		before := e.tuples()
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		code, rep, errOut := asNobody()
		o.exit = fmt.Sprint(code)
		wantExit(t, code, 0, errOut)
		mustContain(t, "stderr", errOut, "incremental state was not saved", "permission denied")
		if rep == nil || rep.SourceRead == nil || rep.SourceRead.Mode != "incremental" {
			t.Errorf("faulted run's read: %+v", rep)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		var rerunRead string
		e.rerun = func(...string) (int, *gsync.Report) {
			code, rep, _ := asNobody()
			if rep != nil && rep.SourceRead != nil {
				rerunRead = rep.SourceRead.Mode
			}
			return code, rep
		}
		e.check(&o, before, rep)
		if rerunRead != "incremental" {
			t.Errorf("rerun read %q, want incremental from the state saved before", rerunRead)
		}
		o.notes = "exit 0, the apply stands; warning \"the source's incremental state was not saved\" with the permission error; the rerun reads incremental from the state the run before saved, reads the faulted run's changes again, and converges"
	})
	return o
}

func stateRows(t *testing.T) []outcome {
	return []outcome{
		fileStateRow(t),
		kubeStateRow(t, "delta state ConfigMap 409", "every ConfigMap write after the apply answers 409 Conflict (\"the object has been modified\"); the Kubernetes API faked over HTTP",
			409, "Conflict", `Operation cannot be fulfilled on configmaps "groupsync-delta-state": the object has been modified; please apply your changes to the latest version and try again`, false),
		kubeStateRow(t, "delta state ConfigMap 403", "every ConfigMap write after the apply answers 403 Forbidden (the Role lacks update)",
			403, "Forbidden", `configmaps "groupsync-delta-state" is forbidden: User "system:serviceaccount:groupsync:groupsync" cannot update resource "configmaps" in API group "" in the namespace "groupsync"`, false),
		kubeStateRow(t, "SIGTERM during the delta commit", "SIGTERM while the 2nd ConfigMap write of the state's save (512-byte parts) is in flight (the engine in process, wired as apply's, its context ended by the signal as apply's is)", 0, "", "", true),
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// More scenarios of the fault suite (issue 15): OpenFGA's paging, models,
// stores and limits, guards against a source that lost members, and the
// lease under clock skew. Each runs as the scenarios in faults_test.go do.

// pagedToken matches a Read body that carries a continuation token.
var pagedToken = regexp.MustCompile(`"continuation_token":"[^"]`)

// mustContain fails the test unless s holds every want.
func mustContain(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func wantExit(t *testing.T, code, want int, stderr string) {
	t.Helper()
	if code != want {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, want, stderr)
	}
}

// keepTenth keeps one member in ten of every group (at least one).
func keepTenth(tn *graphtest.Tenant) {
	for i := range tn.Groups {
		n := max(1, len(tn.Groups[i].Members)/10)
		tn.Groups[i].Members = tn.Groups[i].Members[:n]
	}
}

// noChange leaves the tenant as the baseline run saw it.
func noChange(*graphtest.Tenant) {}

const (
	pagedReads   = "  retry_min_wait: 5ms\n"
	deleteGuard  = "    max_delete_percent: 0\n"
	syncSection  = "sync:\n"
	leaseTTL     = time.Minute
	leaseSection = "sync:\n  lease:\n    enabled: true\n    ttl: 1m\n    wait: 0s\n"
)

func moreScenarios() []scenario {
	var modelBefore string
	return []scenario{
		{name: "OpenFGA read fails mid-pagination", fault: "Read answers 500 to every request for page 2 or later (5 tuples a page), past the 2 retries",
			env: []envOpt{withYAML(pagedReads, pagedReads+"  read_page_size: 5\n")},
			fga: func(f *fgatest.Server) {
				f.SetFault(func(r fgatest.Request) *fgatest.Fault {
					if r.Endpoint == fgatest.Read && pagedToken.Match(r.Body) {
						return &fgatest.Fault{Status: 500}
					}
					return nil
				})
			},
			verify: func(t *testing.T, e *faultEnv, code int, _ *gsync.Report, stderr string) string {
				wantExit(t, code, 1, stderr)
				mustContain(t, "stderr", stderr, "500")
				if n := e.fga.WriteRequests(); n > 2 {
					t.Errorf("%d write requests after a failed read; want only the lease taken and given back", n)
				}
				return "exit 1 naming the 500; nothing written but the lease, taken and given back"
			}},
		{name: "OpenFGA rejects a continuation token", fault: "Read answers 400 invalid_continuation_token to the request for page 2 (5 tuples a page)",
			env: []envOpt{withYAML(pagedReads, pagedReads+"  read_page_size: 5\n")},
			fga: func(f *fgatest.Server) {
				f.SetFault(func(r fgatest.Request) *fgatest.Fault {
					if r.Endpoint == fgatest.Read && pagedToken.Match(r.Body) {
						return &fgatest.Fault{Status: 400, Body: `{"code":"invalid_continuation_token","message":"Invalid continuation token"}`}
					}
					return nil
				})
			},
			verify: func(t *testing.T, e *faultEnv, code int, _ *gsync.Report, stderr string) string {
				wantExit(t, code, 1, stderr)
				mustContain(t, "stderr", stderr, "invalid_continuation_token")
				if n := e.fga.Requests(fgatest.Read); n > 40 {
					t.Errorf("%d read requests: a rejected token must not be retried in a loop", n)
				}
				return "exit 1 naming invalid_continuation_token, not retried; nothing written but the lease"
			}},
		{name: "OpenFGA request too large", fault: "the server takes at most 3 tuples a write (--max-tuples-per-write 3) while openfga.max_tuples_per_write is 5: writes of 4-5 tuples answer 400 exceeded_entity_limit",
			env: []envOpt{func(s *envSpec) { s.fga = append(s.fga, fgatest.WithMaxTuplesPerWrite(3)) }},
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 0, stderr)
				rejected := 0
				for _, w := range e.fga.Writes() {
					if w.Status == 400 {
						rejected++
					}
				}
				if rejected == 0 {
					t.Error("no write was rejected: the limit was not exercised")
				}
				return fmt.Sprintf("exit 0: each rejected chunk (%d) is split in halves that fit; the warning to lower max_tuples_per_write is the operator's", rejected)
			}},
		{name: "model replaced mid-run", fault: "while the lease is taken, a new model without the group#member relation becomes the store's latest",
			mutate: change,
			inject: func(e *faultEnv) {
				var once sync.Once
				modelBefore = strings.Replace(fullModel(e.t), "define member: [user, group#member]", "define member: [user, group#member]\n    define owner: [user]", 1)
				noMember := strings.Replace(modelBefore, "\n    define member: [user, group#member]", "", 1)
				noMember = strings.ReplaceAll(noMember, "group#member", "user")
				e.fga.SetFault(func(r fgatest.Request) *fgatest.Fault {
					if r.Endpoint == fgatest.Write && r.N == 1 {
						once.Do(func() { e.fga.WriteModel(e.t, e.storeID, noMember) })
					}
					return nil
				})
				e.heal = func() { e.fga.WriteModel(e.t, e.storeID, modelBefore) }
			},
			verify: func(t *testing.T, e *faultEnv, code int, _ *gsync.Report, stderr string) string {
				wantExit(t, code, 0, stderr)
				pcode, _, perr := cli(t, "plan", "-c", e.cfg, "--log-level=error")
				if pcode != 1 || !strings.Contains(perr, "member") {
					t.Errorf("plan under the new model: exit %d, %s", pcode, perr)
				}
				return "exit 0: the run writes under the model it resolved at its start (it names it in every write); the next run refuses with exit 1, the model lacks group#member; converged once the model is restored"
			}},
		{name: "Graph members page empty (eventual consistency)", fault: "a 15-member group answers 200 with an empty members page; sync.guards.max_delete_percent is 10",
			env:    []envOpt{withYAML(deleteGuard, "    max_delete_percent: 10\n")},
			mutate: noChange,
			inject: func(e *faultEnv) {
				members := e.graph.Tenant().Groups[0].Members
				if err := e.graph.Mutate(func(tn *graphtest.Tenant) { tn.Groups[0].Members = nil }); err != nil {
					e.t.Fatal(err)
				}
				e.heal = func() {
					if err := e.graph.Mutate(func(tn *graphtest.Tenant) { tn.Groups[0].Members = members }); err != nil {
						e.t.Fatal(err)
					}
				}
			},
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 3, stderr)
				mustContain(t, "stderr", stderr, "max_delete_percent")
				if n := e.fga.WriteRequests(); n > 2 {
					t.Errorf("%d write requests past the guard", n)
				}
				return "exit 3, the percent guard (15 of 90 managed tuples, 17% > 10%): nothing written; the members come back and the next run converges"
			}},
		{name: "group members shrink 90%", fault: "every group keeps one member in ten between runs; sync.guards.max_delete_percent is 30",
			env:    []envOpt{withYAML(deleteGuard, "    max_delete_percent: 30\n")},
			mutate: keepTenth,
			inject: func(e *faultEnv) { e.rerunArgs = []string{"--force"} },
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 3, stderr)
				mustContain(t, "stderr", stderr, "max_delete_percent")
				return "exit 3, the guard: nothing deleted; converged is the rerun with --force (an operator's decision)"
			}},
		{name: "group members shrink 90%, --force", fault: "as above, the run given --force",
			env:    []envOpt{withYAML(deleteGuard, "    max_delete_percent: 30\n")},
			mutate: keepTenth,
			args:   []string{"--force"},
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 0, stderr)
				return "exit 0: --force runs past the guard, this once"
			}},
		{name: "lease clock skew: host ahead", fault: "OpenFGA's tuple timestamps are 2 min behind groupsync's clock (lease TTL 1 min) and another run holds the lease",
			env: []envOpt{withYAML(syncSection, leaseSection), withSkew(-2 * leaseTTL)},
			inject: func(e *faultEnv) {
				e.fga.WriteTuples(e.t, e.storeID, gsync.Tuple{User: "groupsync_instance:entra", Relation: "lease", Object: "groupsync_instance:entra"})
			},
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 0, stderr)
				return "exit 0: the live lease looks expired and is taken over, so two runs can write at once (each write is idempotent, yet a stale plan may undo the other's): keep clocks within the TTL (NTP), as sinks/openfga/lease.go says"
			}},
		{name: "lease clock skew: host behind", fault: "OpenFGA's tuple timestamps are 2 min ahead of groupsync's clock (lease TTL 1 min) and a crashed run left its lease",
			env: []envOpt{withYAML(syncSection, leaseSection), withSkew(2 * leaseTTL)},
			inject: func(e *faultEnv) {
				e.fga.WriteTuples(e.t, e.storeID, gsync.Tuple{User: "groupsync_instance:entra", Relation: "lease", Object: "groupsync_instance:entra"})
			},
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 4, stderr)
				mustContain(t, "stderr", stderr, "lease")
				return "exit 4, lease busy: a lease left behind blocks for TTL + skew (3 min), not TTL; nothing written"
			}},
	}
}

// withSkew puts a proxy in front of OpenFGA that shifts the timestamps of
// the tuples Read returns by d: OpenFGA's clock is d ahead of groupsync's
// host (d < 0: behind).
func withSkew(d time.Duration) envOpt {
	return func(s *envSpec) {
		s.proxy = func(t *testing.T, target string) string {
			u, err := url.Parse(target)
			if err != nil {
				t.Fatal(err)
			}
			p := httputil.NewSingleHostReverseProxy(u)
			p.ModifyResponse = func(r *http.Response) error {
				if !strings.HasSuffix(r.Request.URL.Path, "/read") || r.StatusCode != 200 {
					return nil
				}
				body, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err != nil {
					return err
				}
				var doc map[string]any
				if err := json.Unmarshal(body, &doc); err != nil {
					return err
				}
				tuples, _ := doc["tuples"].([]any)
				for _, tu := range tuples {
					m, _ := tu.(map[string]any)
					if ts, ok := m["timestamp"].(string); ok {
						when, err := time.Parse(time.RFC3339Nano, ts)
						if err != nil {
							return err
						}
						m["timestamp"] = when.Add(d).Format(time.RFC3339Nano)
					}
				}
				body, err = json.Marshal(doc)
				if err != nil {
					return err
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				r.Header.Set("Content-Length", strconv.Itoa(len(body)))
				return nil
			}
			srv := httptest.NewServer(p)
			t.Cleanup(srv.Close)
			return srv.URL
		}
	}
}

// moreFaultRows runs the scenarios that need more than a fault on a
// request: stores deleted, the delta state store failing, other sources,
// the daemon's signals.
func moreFaultRows(t *testing.T) []outcome {
	var rows []outcome
	return rows
}

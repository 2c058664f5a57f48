package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/authentik/authentiktest"
	"github.com/groupsync/groupsync/sources/ldap/slapdtest"
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

// pagedEnv reads OpenFGA 5 tuples a page, so that a group's read pages.
func pagedEnv() []envOpt { return []envOpt{withYAML(pagedReads, pagedReads+"  read_page_size: 5\n")} }

// failPagedReads answers fault to every read of a page past the first.
func failPagedReads(fault fgatest.Fault) func(*fgatest.Server) {
	return func(f *fgatest.Server) {
		f.SetFault(func(r fgatest.Request) *fgatest.Fault {
			if r.Endpoint == fgatest.Read && pagedToken.Match(r.Body) {
				return &fault
			}
			return nil
		})
	}
}

func moreScenarios() []scenario {
	var modelBefore string
	return []scenario{
		{name: "OpenFGA read fails mid-pagination", fault: "Read answers 500 to every request for page 2 or later (5 tuples a page), past the 2 retries",
			env: pagedEnv(),
			fga: failPagedReads(fgatest.Fault{Status: 500}),
			verify: func(t *testing.T, e *faultEnv, code int, _ *gsync.Report, stderr string) string {
				wantExit(t, code, 1, stderr)
				mustContain(t, "stderr", stderr, "500")
				if n := e.fga.WriteRequests(); n > 2 {
					t.Errorf("%d write requests after a failed read; want only the lease taken and given back", n)
				}
				return "exit 1 naming the 500; nothing written but the lease, taken and given back"
			}},
		{name: "OpenFGA rejects a continuation token", fault: "Read answers 400 invalid_continuation_token to the request for page 2 (5 tuples a page)",
			env: pagedEnv(),
			fga: failPagedReads(fgatest.Fault{Status: 400, Body: `{"code":"invalid_continuation_token","message":"Invalid continuation token"}`}),
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
				want := "set it to at most 3 (the largest write it took)"
				if rep == nil || rep.Result == nil || len(rep.Result.Warnings) != 1 || !strings.Contains(rep.Result.Warnings[0], want) {
					t.Errorf("the report does not say what to set max_tuples_per_write to (%q): %+v", want, rep)
				}
				return fmt.Sprintf("exit 0: the refused chunks (%d) are split in halves that fit, and later chunks split before they are sent; the report warns: openfga.max_tuples_per_write is 5, set it to at most 3", rejected)
			}},
		{name: "model replaced mid-run", fault: "while the lease is taken, a new model without the group#member relation becomes the store's latest",
			mutate: change,
			inject: func(e *faultEnv) {
				var once sync.Once
				modelBefore = faultModel(e.t)
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
				wantExit(t, code, 4, stderr)
				mustContain(t, "stderr", stderr, "lease")
				return "exit 4, lease busy: expiry is judged by OpenFGA's clock (its Date header), not the host's, so the live lease is not taken over; nothing written"
			}},
		{name: "lease clock skew: host behind", fault: "OpenFGA's tuple timestamps are 2 min ahead of groupsync's clock (lease TTL 1 min) and a crashed run left its lease",
			env: []envOpt{withYAML(syncSection, leaseSection), withSkew(2 * leaseTTL)},
			inject: func(e *faultEnv) {
				e.fga.WriteTuples(e.t, e.storeID, gsync.Tuple{User: "groupsync_instance:entra", Relation: "lease", Object: "groupsync_instance:entra"})
			},
			verify: func(t *testing.T, e *faultEnv, code int, rep *gsync.Report, stderr string) string {
				wantExit(t, code, 4, stderr)
				mustContain(t, "stderr", stderr, "lease")
				return "exit 4, lease busy: a lease left behind blocks for its TTL; nothing written (that expiry follows OpenFGA's clock, not the host's, is the host-ahead row's)"
			}},
	}
}

// withSkew puts a proxy in front of OpenFGA that shifts its clock by d:
// the timestamps of the tuples Read returns and every answer's Date
// header. OpenFGA's clock is d ahead of groupsync's host (d < 0: behind).
func withSkew(d time.Duration) envOpt {
	return func(s *envSpec) {
		s.proxy = func(t *testing.T, target string) string {
			return jsonRewritingProxy(t, target, func(r *http.Response) bool {
				if date, err := http.ParseTime(r.Header.Get("Date")); err == nil {
					r.Header.Set("Date", date.Add(d).UTC().Format(http.TimeFormat))
				}
				return strings.HasSuffix(r.Request.URL.Path, "/read") && r.StatusCode == 200
			}, func(doc map[string]any) error {
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
				return nil
			})
		}
	}
}

// moreFaultRows runs the scenarios that need more than a fault on a
// request: stores deleted, the delta state store failing, other sources,
// the daemon's signals.
func moreFaultRows(t *testing.T) []outcome {
	rows := []outcome{storeDeleted(t, false), storeDeleted(t, true)}
	rows = append(rows, ldapRows(t)...)
	rows = append(rows, authentikRows(t)...)
	rows = append(rows, stateRows(t)...)
	rows = append(rows, sighupRow(t))
	return rows
}

// storeDeleted deletes the store (DELETE /stores/{id}, a real call to the
// server) before the run, or while it claims the new group.
func storeDeleted(t *testing.T, midRun bool) outcome {
	o := outcome{scenario: "store deleted between runs", fault: "the OpenFGA store is deleted after the baseline run", exit: "not run"}
	if midRun {
		o.scenario, o.fault = "store deleted mid-run", "the OpenFGA store is deleted while the run's 2nd write (the claim) is in flight"
	}
	t.Run(o.scenario, func(t *testing.T) {
		e := newFaultEnv(t)
		e.baseline(change)
		del := func() {
			req, _ := http.NewRequest(http.MethodDelete, e.fga.URL+"/stores/"+e.storeID, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("DELETE store: %d", resp.StatusCode)
			}
		}
		e.fga.ResetCounts()
		if midRun {
			var once sync.Once
			e.fga.SetFault(func(r fgatest.Request) *fgatest.Fault {
				if r.Endpoint == fgatest.Write && r.N == 2 {
					once.Do(del)
				}
				return nil
			})
		} else {
			del()
		}
		code, rep, stderr := e.applyErr()
		o.exit = fmt.Sprint(code)
		if !midRun {
			wantExit(t, code, 1, stderr)
			mustContain(t, "stderr", stderr, e.storeID, "no such store")
		}
		if rep != nil && rep.Result != nil {
			o.added, o.deleted = rep.Result.Added, rep.Result.Deleted
		}
		e.fga.SetFault(nil)
		// The rerun: the store stays gone; groupsync does not create a
		// store it was given by id.
		rcode, _, rerr := e.applyErr()
		wantExit(t, rcode, 1, rerr)
		if e.fga.Requests(fgatest.CreateStore) > 0 {
			t.Error("groupsync created a store")
		}
		mustContain(t, "rerun's stderr", rerr, "no such store")
		o.notes = "exit 1: \"no such store\", nothing read or written; the rerun the same: a store named by id is never recreated, so no convergence until openfga.store_id names a store"
		if midRun {
			wantExit(t, code, 0, stderr)
			o.notes = fmt.Sprintf("exit 0: OpenFGA v1.22.1 soft-deletes a store and still accepts writes to it, so the run's %d adds and %d deletes land in the deleted store (counted from the run's report); the next run exits 1, \"no such store\"; no convergence until openfga.store_id names a store", o.added, o.deleted)
		}
		t.Logf("faulted: %s\nrerun: %s", stderr, rerr)
	})
	return o
}

// newSourceEnv is newFaultEnv with another source: src is the config's
// source section, groups what the registry must name once converged.
func newSourceEnv(t *testing.T, src string, groups []string, clear func()) *faultEnv {
	e := newEnv(t, src, "  user:\n    key: username\n")
	e.clear = clear
	e.groups = func() []string { return slices.Clone(groups) }
	return e
}

// tcpCutter forwards TCP connections to target until cut: then it closes
// every connection after budget more bytes from the server, and refuses
// new ones (the server is gone).
type tcpCutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	budget int
	conns  []net.Conn
}

func newTCPCutter(t *testing.T, target string) *tcpCutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &tcpCutter{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, cn := range c.conns {
			cn.Close()
		}
		c.mu.Unlock()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(in)
		}
	}()
	return c
}

func (c *tcpCutter) set(cut bool, budget int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut, c.budget = cut, budget
}

func (c *tcpCutter) serve(in net.Conn) {
	c.mu.Lock()
	if c.cut && c.budget <= 0 {
		c.mu.Unlock()
		in.Close()
		return
	}
	c.conns = append(c.conns, in)
	c.mu.Unlock()
	out, err := net.Dial("tcp", c.target)
	if err != nil {
		in.Close()
		return
	}
	defer in.Close()
	defer out.Close()
	go func() { _, _ = io.Copy(out, in); out.Close() }()
	buf := make([]byte, 512)
	for {
		n, err := out.Read(buf)
		if n > 0 {
			c.mu.Lock()
			if c.cut {
				n = min(n, c.budget)
				c.budget -= n
			}
			gone := c.cut && c.budget <= 0
			c.mu.Unlock()
			if _, werr := in.Write(buf[:n]); werr != nil || gone {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ldapDirectory mirrors faultTenant: 30 users, 6 groups of 15.
func ldapDirectory() *slapdtest.Directory {
	d := &slapdtest.Directory{}
	for i := range 30 {
		d.Users = append(d.Users, slapdtest.User{UID: fmt.Sprintf("u%d", i)})
	}
	for g := range 6 {
		grp := slapdtest.Group{CN: fmt.Sprintf("team-%d", g)}
		for i := g; i < 30; i += 2 {
			grp.Members = append(grp.Members, d.UserDN(fmt.Sprintf("u%d", i)))
		}
		d.Groups = append(d.Groups, grp)
	}
	return d
}

func ldapRows(t *testing.T) []outcome {
	if _, _, err := slapdtest.Binaries(); err != nil {
		t.Fatalf("the fault suite needs slapd: %v", err)
	}
	groups := []string{"group:team-0", "group:team-1", "group:team-2", "group:team-3", "group:team-4", "group:team-5"}
	run := func(name, fault string, sizeLimit int, cutBytes int, verify func(t *testing.T, code int, stderr string) string) outcome {
		// grow: the directory grows past sizeLimit for the faulted run
		// (15 users more) and shrinks back before the rerun.
		o := outcome{scenario: name, fault: fault, exit: "not run"}
		t.Run(name, func(t *testing.T) {
			d := ldapDirectory()
			opts := []slapdtest.Option{slapdtest.WithDirectory(d)}
			if sizeLimit > 0 {
				opts = append(opts, slapdtest.WithPagedSizeLimit(sizeLimit))
			}
			srv := slapdtest.New(t, opts...)
			u, _ := url.Parse(srv.LDAPSURL)
			cutter := newTCPCutter(t, u.Host)
			t.Setenv("GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD", srv.BindPassword)
			src := fmt.Sprintf(`source:
  type: ldap
  ldap:
    url: ldaps://%s
    ca_file: %s
    bind_dn: %s
    flavor: openldap
    base_dn: %s
    page_size: 5
    max_retries: 1
`, cutter.ln.Addr(), srv.CAFile, srv.BindDN, srv.BaseDN)
			e := newSourceEnv(t, src, groups, func() { cutter.set(false, 0) })
			if code, _, errOut := e.applyErr(); code != 0 {
				t.Fatalf("baseline apply exit %d: %s", code, errOut)
			}
			// change: team-0 loses 5 members, team-1 gains u0 and u2.
			admin := srv.AdminConn(t)
			mod := goldap.NewModifyRequest(d.GroupDN("team-0"), nil)
			mod.Delete("member", d.Groups[0].Members[:5])
			if err := admin.Modify(mod); err != nil {
				t.Fatal(err)
			}
			mod = goldap.NewModifyRequest(d.GroupDN("team-1"), nil)
			mod.Add("member", []string{d.UserDN("u0"), d.UserDN("u2")})
			if err := admin.Modify(mod); err != nil {
				t.Fatal(err)
			}
			before := e.tuples()
			if cutBytes > 0 {
				cutter.set(true, cutBytes)
			}
			if sizeLimit > 0 {
				var added []string
				for i := 30; i < 45; i++ {
					uid := fmt.Sprintf("u%d", i)
					add := goldap.NewAddRequest(d.UserDN(uid), nil)
					add.Attribute("objectClass", []string{"inetOrgPerson"})
					add.Attribute("uid", []string{uid})
					add.Attribute("cn", []string{uid})
					add.Attribute("sn", []string{uid})
					if err := admin.Add(add); err != nil {
						t.Fatal(err)
					}
					added = append(added, d.UserDN(uid))
				}
				e.heal = func() {
					for _, dn := range added {
						if err := admin.Del(goldap.NewDelRequest(dn, nil)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			code, rep, stderr := e.applyErr()
			o.exit = fmt.Sprint(code)
			o.notes = verify(t, code, stderr)
			e.check(&o, before, rep)
		})
		return o
	}
	return []outcome{
		run("LDAP server gone mid-search", "slapd's connection closes 6 KB into the run's paged searches (5 entries a page) and new connections are refused", 0, 6<<10,
			func(t *testing.T, code int, stderr string) string {
				wantExit(t, code, 1, stderr)
				return "exit 1 after the read's retry: a partial read is never planned, so nothing is deleted"
			}),
		run("LDAP size limit exceeded", "the directory grows from 30 to 45 users while slapd ends paged searches past 40 entries in all (size.prtotal 40) with result code 4, sizeLimitExceeded", 40, 0,
			func(t *testing.T, code int, stderr string) string {
				wantExit(t, code, 1, stderr)
				mustContain(t, "stderr", stderr, "Size Limit Exceeded", "page_size")
				return "exit 1 naming result code 4 with a hint; nothing planned from the partial search; converged once the directory is back under the limit"
			}),
	}
}

func authentikTenant() *authentiktest.Tenant {
	tn := &authentiktest.Tenant{}
	for i := range 30 {
		tn.Users = append(tn.Users, authentiktest.User{PK: i + 1, Username: fmt.Sprintf("u%d", i)})
	}
	for g := range 6 {
		grp := authentiktest.Group{Name: fmt.Sprintf("team-%d", g)}
		for i := g; i < 30; i += 2 {
			grp.Users = append(grp.Users, i+1)
		}
		tn.Groups = append(tn.Groups, grp)
	}
	return tn
}

func authentikRows(t *testing.T) []outcome {
	groups := []string{"group:team-0", "group:team-1", "group:team-2", "group:team-3", "group:team-4", "group:team-5"}
	run := func(name, fault string, inject func(ak *authentiktest.Server, loop *atomic.Bool), verify func(t *testing.T, code int, stderr string) string) outcome {
		o := outcome{scenario: name, fault: fault, exit: "not run"}
		t.Run(name, func(t *testing.T) {
			ak := authentiktest.New(t, authentikTenant())
			var loop atomic.Bool
			proxy := pagingLoopProxy(t, ak.URL, &loop)
			t.Setenv("GROUPSYNC_SOURCE_AUTHENTIK_TOKEN", ak.Token())
			src := fmt.Sprintf(`source:
  type: authentik
  authentik:
    url: %s
    page_size: 5
    max_retries: 2
    max_retry_wait: 2s
`, proxy)
			e := newSourceEnv(t, src, groups, func() { ak.SetFaultFunc(nil); loop.Store(false) })
			if code, _, errOut := e.applyErr(); code != 0 {
				t.Fatalf("baseline apply exit %d: %s", code, errOut)
			}
			if err := ak.Mutate(func(tn *authentiktest.Tenant) {
				tn.Groups[0].Users = tn.Groups[0].Users[5:]
				tn.Groups[1].Users = append(tn.Groups[1].Users, 1, 3)
			}); err != nil {
				t.Fatal(err)
			}
			before := e.tuples()
			inject(ak, &loop)
			code, rep, stderr := e.applyErr()
			o.exit = fmt.Sprint(code)
			o.notes = verify(t, code, stderr)
			e.check(&o, before, rep)
		})
		return o
	}
	return []outcome{
		run("authentik 5xx", "every request for the group list answers 503 past the retries",
			func(ak *authentiktest.Server, _ *atomic.Bool) {
				ak.SetFaultFunc(func(r *http.Request) *authentiktest.Fault {
					if strings.HasPrefix(r.URL.Path, "/api/v3/core/groups") {
						return authentiktest.StatusFault(503)
					}
					return nil
				})
			},
			func(t *testing.T, code int, stderr string) string {
				wantExit(t, code, 1, stderr)
				mustContain(t, "stderr", stderr, "503")
				return "exit 1 naming the 503: nothing planned from a failed read"
			}),
		run("authentik paging loop", "page 2 of each list says its next page is 1 (a proxy rewrites authentik's pagination.next)",
			func(_ *authentiktest.Server, loop *atomic.Bool) { loop.Store(true) },
			func(t *testing.T, code int, stderr string) string {
				wantExit(t, code, 1, stderr)
				mustContain(t, "stderr", stderr, "next page is 1")
				return "exit 1: the read stops at the loop (\"page 2 says the next page is 1\"), nothing planned"
			}),
	}
}

// pagingLoopProxy forwards to authentik; while loop is set, a page 2
// whose pagination.next is 3 says 1 instead.
func pagingLoopProxy(t *testing.T, target string, loop *atomic.Bool) string {
	return jsonRewritingProxy(t, target, func(r *http.Response) bool {
		return loop.Load() && r.StatusCode == 200 && r.Request.URL.Query().Get("page") == "2"
	}, func(doc map[string]any) error {
		if pg, ok := doc["pagination"].(map[string]any); ok && pg["next"] != float64(0) {
			pg["next"] = 1
		}
		return nil
	})
}

// jsonRewritingProxy forwards to target and, for each answer match picks
// (it may adjust its headers), lets edit change the JSON body.
func jsonRewritingProxy(t *testing.T, target string, match func(*http.Response) bool, edit func(doc map[string]any) error) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(r *http.Response) error {
		if !match(r) {
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
		if err := edit(doc); err != nil {
			return err
		}
		if body, err = json.Marshal(doc); err != nil {
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

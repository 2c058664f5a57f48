package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/sinks/openfga/fgatest"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	gsync "github.com/groupsync/groupsync/sync"
)

// The event path end to end, through the real daemon command: the daemon
// subscribes to Graph's change notifications (graphtest validates the URL
// as Graph does), a membership change in Graph is delivered over HTTP,
// becomes a targeted run of that group, and reaches OpenFGA in well under
// the schedule's hour; so does a generic POST /sync/user/{key}. A
// webhook never bypasses authentication.
func TestDaemonFollowsChangesThroughEvents(t *testing.T) {
	const hookToken = "webhook-token-0123456789"
	tenant := graphtest.Generate(graphtest.GenOptions{Seed: 11, Users: 60, Groups: 8, MaxDepth: 1, MembersPerGroup: 6})
	graph := graphtest.New(t, tenant, graphtest.WithPermissions("Group.Read.All", "User.Read.All"))
	srv := fgatest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("GROUPSYNC_SOURCE_MSGRAPH_TOKEN", graph.Token())
	t.Setenv("GROUPSYNC_DAEMON_WEBHOOKS_TOKEN", hookToken)
	cfg := filepath.Join(t.TempDir(), "groupsync.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`source:
  type: msgraph
  msgraph:
    auth: token
    graph_endpoint: %q
    subscriptions:
      enabled: true
      notification_url: http://%s/webhooks/graph
openfga: {api_url: %q, store_name: events-test}
mapping: {group: {key: id}}
daemon:
  schedule: "@every 24h"
  listen: %s
  shutdown_grace: 5s
  webhooks: {enabled: true, coalesce: 100ms}
`, graph.URL, addr, srv.URL, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "model", "write", "-c", cfg); code != 0 {
		t.Fatalf("model write: %d %s %s", code, out, errOut)
	}
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	exit := make(chan int, 1)
	go func() { exit <- run([]string{"daemon", "-c", cfg, "--log-format=json"}, &stdout, stderr) }()
	base := "http://" + addr
	stderr.logLine(t, "serving /metrics, /healthz, /readyz and /run")
	waitFor(t, base+"/readyz", 200, "last successful run ended")
	storeID := srv.StoreID(t, "events-test")
	has := func(tuple string) bool {
		return slices.ContainsFunc(srv.Tuples(t, storeID), func(tu gsync.Tuple) bool { return tu.String() == tuple })
	}
	eventually := func(what string, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 20*time.Second {
			if ok() {
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s did not happen within 20s:\n%s", what, stderr.String())
		return 0
	}
	eventually("the subscription", func() bool { return len(graph.Subscriptions()) == 1 })

	// A change in Graph: a user joins a group they were not in.
	// The smallest group, which is not one of the built-in ones groupsync
	// leaves out.
	g := tenant.Groups[0]
	for _, c := range tenant.Groups {
		if c.DisplayName != "All Company" && (g.DisplayName == "All Company" || len(c.Members) < len(g.Members)) {
			g = c
		}
	}
	var joiner string
	for _, u := range tenant.Users {
		if u.AccountEnabled && !slices.Contains(g.Members, u.ID) {
			joiner = u.ID
			break
		}
	}
	if joiner == "" {
		t.Fatalf("no user to add to %s", g.DisplayName)
	}
	want := "user:" + joiner + " member group:" + g.ID
	if has(want) {
		t.Fatal("the joiner is already a member")
	}
	if err := graph.Mutate(func(tn *graphtest.Tenant) {
		for i := range tn.Groups {
			if tn.Groups[i].ID == g.ID {
				tn.Groups[i].Members = append(tn.Groups[i].Members, joiner)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	lag := eventually("the Graph change in OpenFGA", func() bool { return has(want) })
	t.Logf("Graph change to OpenFGA: %s", lag.Round(time.Millisecond))

	// The generic endpoint: refused without the token, queued with it.
	post := func(path, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	leaver := joiner // and leaves again
	gone := "user:" + leaver + " member group:" + g.ID
	if err := graph.Mutate(func(tn *graphtest.Tenant) {
		for i := range tn.Groups {
			if tn.Groups[i].ID == g.ID {
				tn.Groups[i].Members = slices.DeleteFunc(tn.Groups[i].Members, func(id string) bool { return id == leaver })
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	eventually("the leaver's removal", func() bool { return !has(gone) })
	if code := post("/sync/user/"+leaver, ""); code != http.StatusUnauthorized {
		t.Fatalf("POST /sync/user without a token: %d", code)
	}
	if code := post("/sync/user/"+leaver, "wrong-token-0123456789"); code != http.StatusUnauthorized {
		t.Fatalf("POST /sync/user with a wrong token: %d", code)
	}
	if code := post("/sync/user/"+leaver, hookToken); code != http.StatusAccepted {
		t.Fatalf("POST /sync/user: %d", code)
	}
	// A run's tuples are readable before the run has finished (and been
	// counted): wait for the count rather than race it.
	var scrape string
	eventually("three successful runs counted", func() bool {
		_, scrape = httpGet(t, base+"/metrics")
		v, ok := metricValue(scrape, `groupsync_runs_total{result="ok"}`)
		return ok && v >= 3
	})
	if v, ok := metricValue(scrape, `groupsync_events_received_total{origin="graph"}`); !ok || v < 1 {
		t.Errorf("graph events received: %v %v", v, ok)
	}

	stopDaemon(t, exit, stderr)
	if strings.Contains(stderr.String(), hookToken) {
		t.Fatal("the webhook token was printed")
	}
}

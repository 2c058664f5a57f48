package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
)

// The event benchmark: `groupsync daemon` with Graph change notifications
// on, against the tenant the other scenarios left in sync. Each change adds
// a user to a group in graphtest, which notifies the daemon over HTTP as
// Graph would; the latency is from the change until the tuple is readable
// in OpenFGA (polled directly, not through the counting proxy), and the
// requests per change are what groupsync sent to Graph and to OpenFGA
// during the phase, divided by the changes.

// eventRates are the change rates measured, per second, and how many
// changes each sends.
var eventRates = []struct {
	perSecond float64
	changes   int
}{{1, 20}, {50, 200}}

func benchEvents(ctx context.Context, o options, fga *counter, graph *graphtest.Server, baseCfg, storeID string,
	env []string, sz size, log func(string, ...any)) ([]measurement, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := strings.Replace(baseCfg, "    auth: token\n", fmt.Sprintf("    auth: token\n    subscriptions: {enabled: true, notification_url: \"http://%s/webhooks/graph\"}\n", addr), 1) +
		fmt.Sprintf("daemon: {schedule: \"@every 24h\", run_at_start: false, listen: %q, webhooks: {enabled: true, coalesce: 100ms, queue_size: 10000}}\n", addr)
	cfgPath := o.work + "/groupsync-bench-events-" + sz.Name + ".yaml"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(dctx, o.bin, "daemon", "-c", cfgPath, "--log-level", "warn")
	cmd.Env = append(slices.Clone(env), "GROUPSYNC_DAEMON_WEBHOOKS_TOKEN=bench-webhook-token-0123456789")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { stop(); _ = cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for len(graph.Subscriptions()) == 0 {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the daemon did not subscribe within 60s:\n%s", tail(stderr.String(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Only groups groupsync manages (they hold tuples now): a change to a
	// distribution list, a dynamic group or a name two groups share never
	// becomes a tuple, by design.
	managed, err := managedObjects(ctx, o.fgaURL, storeID)
	if err != nil {
		return nil, err
	}
	tenant := graph.Tenant()
	var groups []graphtest.Group
	for _, g := range tenant.Groups {
		if managed["group:"+groupObjectID(g)] && len(g.Members) < len(tenant.Users)/2 {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("no managed group to change")
	}
	users := map[string]bool{}
	for _, u := range tenant.Users {
		if u.AccountEnabled && u.UserType != "Guest" {
			users[u.ID] = true
		}
	}
	rnd := rand.New(rand.NewPCG(42, 7))
	var out []measurement
	for _, rate := range eventRates {
		graph.ResetStats()
		before := fga.snapshot()
		lat := make([]time.Duration, rate.changes)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range rate.changes {
			// A user joins a group they are not in (an ordinary group, not
			// the everyone group the default filters leave out).
			gi := rnd.IntN(len(groups))
			g := groups[gi]
			var u string
			for u == "" || slices.Contains(g.Members, u) || !users[u] {
				u = tenant.Users[rnd.IntN(len(tenant.Users))].ID
			}
			next := start.Add(time.Duration(float64(i) / rate.perSecond * float64(time.Second)))
			time.Sleep(time.Until(next))
			t0 := time.Now()
			if err := graph.Mutate(func(tn *graphtest.Tenant) {
				for j := range tn.Groups {
					if tn.Groups[j].ID == g.ID {
						tn.Groups[j].Members = append(tn.Groups[j].Members, u)
					}
				}
			}); err != nil {
				return nil, err
			}
			groups[gi].Members = append(groups[gi].Members, u)
			wg.Go(func() {
				lat[i] = -1
				if waitTuple(ctx, o.fgaURL, storeID, "user:"+u, "group:"+groupObjectID(g), 60*time.Second) >= 0 {
					lat[i] = time.Since(t0)
				}
			})
		}
		wg.Wait()
		st := graph.Stats()
		after := fga.snapshot()
		slices.Sort(lat)
		m := measurement{Size: sz.Name, Scenario: fmt.Sprintf("events, %g change/s", rate.perSecond), Wall: time.Since(start),
			GraphRequests: st.Requests, GraphItems: st.BatchItems, FGAReads: after[0] - before[0], FGAWrites: after[1] - before[1], FGAOther: after[2] - before[2],
			Changes: rate.changes, P50: lat[len(lat)/2], P99: lat[min(len(lat)-1, len(lat)*99/100)], Missed: countMissed(lat)}
		log("%-24s p50 %s p99 %s  graph %.1f requests/change  openfga %.1f reads %.1f writes/change  missed %d",
			m.Scenario, m.P50.Round(time.Millisecond), m.P99.Round(time.Millisecond),
			float64(m.GraphRequests)/float64(m.Changes), float64(m.FGAReads)/float64(m.Changes), float64(m.FGAWrites)/float64(m.Changes), m.Missed)
		out = append(out, m)
	}
	return out, nil
}

// managedObjects is every object with a member tuple in the store.
func managedObjects(ctx context.Context, fgaURL, storeID string) (map[string]bool, error) {
	out := map[string]bool{}
	token := ""
	for {
		body, _ := json.Marshal(map[string]any{"page_size": 100, "continuation_token": token})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fgaURL+"/stores/"+storeID+"/read", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		var r struct {
			Tuples []struct {
				Key struct{ Object, Relation string } `json:"key"`
			} `json:"tuples"`
			ContinuationToken string `json:"continuation_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, t := range r.Tuples {
			if t.Key.Relation == "member" {
				out[t.Key.Object] = true
			}
		}
		if r.ContinuationToken == "" || r.ContinuationToken == token {
			return out, nil
		}
		token = r.ContinuationToken
	}
}

// waitTuple polls OpenFGA until the tuple exists; a negative duration
// means it never came within limit.
func waitTuple(ctx context.Context, fgaURL, storeID, user, object string, limit time.Duration) time.Duration {
	body, _ := json.Marshal(map[string]any{"tuple_key": map[string]string{"user": user, "relation": "member", "object": object}})
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		resp, err := http.Post(fgaURL+"/stores/"+storeID+"/read", "application/json", bytes.NewReader(body))
		if err == nil {
			var r struct{ Tuples []json.RawMessage }
			_ = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if len(r.Tuples) > 0 {
				return time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// groupObjectID is the object id the benchmark's mapping (lowercased
// names, whitespace as "-") gives a group.
func groupObjectID(g graphtest.Group) string {
	return strings.ToLower(strings.Join(strings.Fields(g.DisplayName), "-"))
}

func countMissed(lat []time.Duration) int {
	n := 0
	for _, d := range lat {
		if d < 0 {
			n++
		}
	}
	return n
}

package msgraph

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
)

// subsQueue is the daemon's event queue, reduced to a list.
type subsQueue struct {
	mu     sync.Mutex
	events []daemon.Event
}

func (q *subsQueue) Enqueue(e daemon.Event) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.events = append(q.events, e)
	return nil
}

func (q *subsQueue) len() int { q.mu.Lock(); defer q.mu.Unlock(); return len(q.events) }

// fakeClock is a settable clock for the manager; Graph's stays real.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// subsRig is graphtest, the daemon's Graph handler on a real HTTP server,
// and a manager over the real SDK.
type subsRig struct {
	srv   *graphtest.Server
	src   *Source
	hook  *httptest.Server
	queue *subsQueue
	cfg   config.MSGraphSubscriptions
	clock *fakeClock
	m     *Subscriptions
	// rotated, when set, is the clientState the handler checks instead
	// of the manager's.
	rotated atomic.Pointer[string]
}

func newSubsRig(t *testing.T, state string) *subsRig {
	t.Helper()
	r := &subsRig{queue: &subsQueue{}, clock: &fakeClock{t: time.Now()}}
	r.srv = graphtest.New(t, fixture(), graphtest.WithPermissions("Group.Read.All", "User.Read.All"))
	var handler http.Handler
	var mu sync.Mutex
	r.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		h := handler
		mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.hook.Close)
	r.cfg = config.MSGraphSubscriptions{Enabled: true, NotificationURL: r.hook.URL + "/webhooks/graph",
		LifecycleURL: r.hook.URL + "/webhooks/graph/lifecycle", ClientState: config.Secret(state),
		RenewBefore: config.Duration(20 * time.Minute)}
	var err error
	if r.src, err = New(graphConfig(r.srv)); err != nil {
		t.Fatal(err)
	}
	r.m = r.manager(t)
	secret := func() string {
		if p := r.rotated.Load(); p != nil {
			return *p
		}
		return r.m.ClientState()
	}
	h := daemon.GraphNotificationHandler(r.queue, r.m, secret, zap.NewNop())
	mu.Lock()
	handler = h
	mu.Unlock()
	return r
}

// manager is another process's manager on the same config.
func (r *subsRig) manager(t *testing.T) *Subscriptions {
	t.Helper()
	m, err := NewSubscriptions(r.src, r.cfg, WithSubscriptionClock(r.clock.now), WithSubscriptionLifetime(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscriptionCreateAndNotify(t *testing.T) {
	r := newSubsRig(t, "")
	ctx := context.Background()
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	subs := r.srv.Subscriptions()
	id, exp := r.m.Current()
	if len(subs) != 1 || subs[0].ID != id || subs[0].ClientState != r.m.ClientState() || len(r.m.ClientState()) < 32 ||
		subs[0].Resource != "groups" || subs[0].ChangeType != "updated,deleted" || subs[0].LifecycleURL != r.cfg.LifecycleURL ||
		!exp.Equal(subs[0].Expiration) {
		t.Fatalf("subscription %+v; manager %s %s", subs, id, exp)
	}
	validations := 0
	for _, d := range r.srv.Deliveries() {
		if d.Kind == "validation" && d.Status == http.StatusOK {
			validations++
		}
	}
	if validations != 2 {
		t.Fatalf("Graph validated %d URLs, want the notification and lifecycle URLs", validations)
	}

	// A membership change reaches the queue as one targeted run of the
	// group that changed.
	if err := r.srv.Mutate(func(tn *graphtest.Tenant) { tn.Groups[0].Members = tn.Groups[0].Members[:1] }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event", func() bool { return r.queue.len() == 1 })
	r.queue.mu.Lock()
	e := r.queue.events[0]
	r.queue.mu.Unlock()
	if e.Kind != daemon.EventSlice || len(e.Slice.Groups) != 1 || e.Slice.Groups[0] != r.srv.Tenant().Groups[0].ID || e.Origin != "graph" {
		t.Fatalf("%+v", e)
	}
	r.srv.WaitNotifications()
	if d := r.srv.Deliveries(); d[len(d)-1].Status != http.StatusAccepted {
		t.Fatalf("the handler answered %+v", d[len(d)-1])
	}

	// Notifications whose clientState is not ours are ignored.
	rotated := "rotated"
	r.rotated.Store(&rotated)
	r.srv.Notify(fixture().Groups[0].ID)
	r.srv.WaitNotifications()
	if n := r.queue.len(); n != 1 {
		t.Fatalf("a mismatched clientState queued work: %d events", n)
	}
}

func TestSubscriptionRenewAndVanish(t *testing.T) {
	r := newSubsRig(t, "")
	ctx := context.Background()
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id, exp := r.m.Current()
	// Nothing due: a look, no renewal.
	r.clock.add(30 * time.Minute)
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.srv.Subscriptions(); s[0].Reauthorized != 0 {
		t.Fatalf("renewed early: %+v", s[0])
	}
	// Less than renew_before left: PATCH to a full lifetime.
	r.clock.add(15 * time.Minute)
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id2, exp2 := r.m.Current()
	s := r.srv.Subscriptions()
	if id2 != id || !exp2.After(exp) || s[0].Reauthorized != 1 || !s[0].Expiration.Equal(exp2) {
		t.Fatalf("renewal: %s %s -> %s %s; server %+v", id, exp, id2, exp2, s)
	}
	// Gone behind our back (groups get no subscriptionRemoved): the next
	// Ensure notices and creates another.
	r.srv.ExpireSubscription(id)
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if id3, _ := r.m.Current(); id3 == id || len(r.srv.Subscriptions()) != 1 || r.srv.Subscriptions()[0].ID != id3 {
		t.Fatalf("not recreated: %s %+v", id3, r.srv.Subscriptions())
	}
}

func TestSubscriptionLifecycleNotifications(t *testing.T) {
	r := newSubsRig(t, "")
	ctx := context.Background()
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := r.m.Current()
	// reauthorizationRequired: POST /reauthorize, no run.
	r.clock.add(15 * time.Minute) // past Graph's 10 minutes after creation
	if err := r.srv.SendLifecycle(id, "reauthorizationRequired"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reauthorization", func() bool { s := r.srv.Subscriptions(); return s[0].Reauthorized == 1 && !s[0].NeedsReauth })
	if r.queue.len() != 0 {
		t.Fatal("a reauthorization queued a run")
	}
	// Within 10 minutes of it, another challenge is left alone.
	r.clock.add(time.Minute)
	if err := r.m.Reauthorize(ctx, id); err != nil || r.srv.Subscriptions()[0].Reauthorized != 1 {
		t.Fatalf("reauthorized within 10 minutes: %v %+v", err, r.srv.Subscriptions())
	}
	// Challenges for other subscriptions are not ours.
	if err := r.m.Reauthorize(ctx, "someone-else"); err != nil {
		t.Fatal(err)
	}

	// subscriptionRemoved: recreate, and a delta round for the gap.
	if err := r.srv.RemoveSubscription(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new subscription", func() bool {
		s := r.srv.Subscriptions()
		return len(s) == 1 && s[0].ID != id
	})
	waitFor(t, "the delta event", func() bool { return r.queue.len() == 1 })
	if id2, _ := r.m.Current(); id2 == id || id2 != r.srv.Subscriptions()[0].ID {
		t.Fatalf("manager keeps %s", id2)
	}
	// missed: a delta round.
	id2, _ := r.m.Current()
	if err := r.srv.SendLifecycle(id2, "missed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delta event for missed", func() bool { return r.queue.len() == 2 })
}

func TestSubscriptionRestartRediscovers(t *testing.T) {
	r := newSubsRig(t, "configured-client-state")
	ctx := context.Background()
	if err := r.m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := r.m.Current()
	// A restart with the configured clientState takes the subscription over.
	m2 := r.manager(t)
	if err := m2.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if id2, _ := m2.Current(); id2 != id || len(r.srv.Subscriptions()) != 1 {
		t.Fatalf("restart: %s vs %s; %+v", id2, id, r.srv.Subscriptions())
	}
	// Duplicates (a crash between create and answer, say) are cleaned up,
	// keeping the one that lives longest.
	r.clock.add(time.Minute)
	m3 := r.manager(t)
	if err := m3.Recreate(ctx, ""); err != nil {
		t.Fatal(err)
	}
	newest, _ := m3.Current()
	if len(r.srv.Subscriptions()) != 2 {
		t.Fatalf("%+v", r.srv.Subscriptions())
	}
	m4 := r.manager(t)
	if err := m4.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.srv.Subscriptions(); len(s) != 1 || s[0].ID != newest {
		t.Fatalf("after cleanup: %+v, want %s", s, newest)
	}
	// With a random clientState, which Graph never returns, the old
	// subscription cannot be checked: it is replaced.
	cfg := r.cfg
	cfg.ClientState = ""
	m5, err := NewSubscriptions(r.src, cfg, WithSubscriptionClock(r.clock.now), WithSubscriptionLifetime(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := m5.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s := r.srv.Subscriptions()
	if id5, _ := m5.Current(); len(s) != 1 || s[0].ID != id5 || id5 == newest || s[0].ClientState != m5.ClientState() {
		t.Fatalf("random clientState restart: %+v", s)
	}
	// Delete on shutdown.
	if err := m5.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.srv.Subscriptions(); len(s) != 0 {
		t.Fatalf("after Delete: %+v", s)
	}
}

func TestSubscriptionErrors(t *testing.T) {
	r := newSubsRig(t, "")
	ctx := context.Background()
	// GroupMember.Read.All reads groups but is not documented for
	// subscriptions.
	r.srv.SetPermissions("GroupMember.Read.All")
	err := r.m.Ensure(ctx)
	if err == nil || !strings.Contains(err.Error(), "Group.Read.All") {
		t.Fatalf("%v", err)
	}
	// An endpoint that fails the handshake fails the creation, naming it.
	r.srv.SetPermissions("Group.Read.All")
	cfg := r.cfg
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"` + req.URL.Query().Get("validationToken") + `"`))
	}))
	defer broken.Close()
	cfg.NotificationURL, cfg.LifecycleURL = broken.URL+"/webhooks/graph", ""
	m, err := NewSubscriptions(r.src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err == nil || !strings.Contains(err.Error(), cfg.NotificationURL) || !strings.Contains(err.Error(), "validation") {
		t.Fatalf("%v", err)
	}
	if len(r.srv.Subscriptions()) != 0 {
		t.Fatal("created despite the failed handshake")
	}
	if _, err := NewSubscriptions(r.src, config.MSGraphSubscriptions{}); err == nil {
		t.Fatal("no notification URL accepted")
	}
}

func TestSubscriptionRunRetriesSooner(t *testing.T) {
	r := newSubsRig(t, "")
	r.srv.SetPermissions("GroupMember.Read.All") // creation fails at first
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.m.Run(ctx, 200*time.Millisecond); close(done) }()
	time.Sleep(50 * time.Millisecond)
	r.srv.SetPermissions("Group.Read.All")
	waitFor(t, "the subscription", func() bool { return len(r.srv.Subscriptions()) == 1 })
	cancel()
	<-done
}

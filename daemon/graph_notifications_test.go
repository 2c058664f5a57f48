package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const testClientState = "test-client-state"

// fakeQueue records events; full refuses them, block holds Enqueue until
// released.
type fakeQueue struct {
	mu     sync.Mutex
	events []Event
	full   bool
	block  chan struct{}
}

func (q *fakeQueue) Enqueue(e Event) error {
	if q.block != nil {
		<-q.block
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.full {
		return ErrQueueFull
	}
	q.events = append(q.events, e)
	return nil
}

func (q *fakeQueue) got() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Event(nil), q.events...)
}

// fakeSubs records lifecycle actions.
type fakeSubs struct {
	calls   chan string
	release chan struct{} // when set, actions wait for it
}

func newFakeSubs() *fakeSubs { return &fakeSubs{calls: make(chan string, 16)} }

func (f *fakeSubs) act(kind, id string) error {
	f.calls <- kind + " " + id
	if f.release != nil {
		<-f.release
	}
	return nil
}
func (f *fakeSubs) Reauthorize(_ context.Context, id string) error { return f.act("reauthorize", id) }
func (f *fakeSubs) Recreate(_ context.Context, id string) error    { return f.act("recreate", id) }

type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) observe(s string) { o.mu.Lock(); o.n[s]++; o.mu.Unlock() }
func (o *outcomes) get(s string) int { o.mu.Lock(); defer o.mu.Unlock(); return o.n[s] }

func newGraphHandler(t *testing.T, q EventQueue, subs SubscriptionReauthorizer, opts ...GraphOption) (http.Handler, *outcomes, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	o := &outcomes{n: map[string]int{}}
	opts = append([]GraphOption{WithGraphObserver(o.observe)}, opts...)
	return GraphNotificationHandler(q, subs, func() string { return testClientState }, zap.New(core), opts...), o, logs
}

func post(h http.Handler, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/graph/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGraphValidationEcho(t *testing.T) {
	h, o, _ := newGraphHandler(t, &fakeQueue{}, nil)
	token := "Validation: Testing client application reachability for subscription Request-Id: 4b1c+&<b>"
	w := post(h, "/webhooks/graph?validationToken="+url.QueryEscape(token), "")
	if w.Code != http.StatusOK || w.Body.String() != token || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if o.get(GraphValidation) != 1 {
		t.Fatal("validation not observed")
	}
	if w := post(h, "/webhooks/graph?validationToken=", ""); w.Code != http.StatusBadRequest {
		t.Fatalf("empty token: %d", w.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "/webhooks/graph?validationToken=x", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", rec.Code)
	}
}

// Notifications that name their groups become one targeted run of those
// groups: requests in proportion to the change, on both sides.
func TestGraphNotificationEnqueuesTheGroupsItNames(t *testing.T) {
	var ev []Event
	q := &fakeQueue{}
	h, o, _ := newGraphHandler(t, q, nil)
	before := time.Now()
	w := post(h, "/webhooks/graph", readTestdata(t, "notification.json"))
	if w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if ev := q.got(); len(ev) != 1 || ev[0].Kind != EventDelta {
		t.Fatalf("a deleted group is a delta run: %+v", ev)
	}
	want := []string{"3b8f5c74-2e5a-4cab-9f2b-4d9e7a0c1d23", "4c9a6d85-3f6b-4dbc-8a3c-5e0f8b1d2e34"}
	body := strings.Replace(readTestdata(t, "notification.json"), `"changeType": "deleted"`, `"changeType": "updated"`, 1)
	w = post(h, "/webhooks/graph", body)
	ev = q.got()[1:]
	if len(ev) != 1 || ev[0].Kind != EventSlice || !slices.Equal(ev[0].Slice.Groups, want) || ev[0].Origin != "graph" || ev[0].Received.Before(before) {
		t.Fatalf("two items, one event: %+v", ev)
	}
	if o.get(GraphEnqueued) != 2 {
		t.Fatal("not observed")
	}
}

// A notification that names no group can only say "something changed":
// a delta run reads what.
func TestGraphNotificationWithoutAGroupIsADeltaRun(t *testing.T) {
	q := &fakeQueue{}
	h, _, _ := newGraphHandler(t, q, nil)
	body := strings.Replace(readTestdata(t, "notification.json"), `"resourceData"`, `"resourceDataGone"`, 1)
	body = strings.Replace(body, `"Groups/3b8f5c74-2e5a-4cab-9f2b-4d9e7a0c1d23"`, `"directory"`, 1)
	if w := post(h, "/webhooks/graph", body); w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if ev := q.got(); len(ev) != 1 || ev[0].Kind != EventDelta {
		t.Fatalf("%+v", ev)
	}
}

func TestGraphClientStateMismatch(t *testing.T) {
	q := &fakeQueue{}
	h, o, logs := newGraphHandler(t, q, newFakeSubs())
	forged := strings.ReplaceAll(readTestdata(t, "notification.json"), testClientState, "guessed")
	if w := post(h, "/webhooks/graph", forged); w.Code != http.StatusAccepted {
		t.Fatalf("all items forged: %d (Graph wants a 2xx)", w.Code)
	}
	if len(q.got()) != 0 || o.get(GraphClientStateWrong) != 2 || o.get(GraphNothingToDo) != 1 {
		t.Fatalf("forged items ran: %v %v", q.got(), o.n)
	}
	// One good item among bad ones is enough; each bad one is counted.
	mixed := `{"value":[{"subscriptionId":"a","clientState":"bad","changeType":"updated"},` +
		`{"subscriptionId":"b","clientState":"` + testClientState + `","changeType":"updated"},` +
		`{"subscriptionId":"c","changeType":"updated"}]}`
	if w := post(h, "/webhooks/graph", mixed); w.Code != http.StatusAccepted || len(q.got()) != 1 || o.get(GraphClientStateWrong) != 4 {
		t.Fatalf("mixed: %d %v %v", w.Code, q.got(), o.n)
	}
	// A forged lifecycle notification does nothing either.
	if w := post(h, "/webhooks/graph/lifecycle", strings.ReplaceAll(readTestdata(t, "lifecycle.json"), testClientState, "")); w.Code != http.StatusAccepted {
		t.Fatal(w.Code)
	}
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, testClientState) {
				t.Fatalf("the clientState was logged: %v", e)
			}
		}
	}
	// Without a secret, nothing matches, not even an empty clientState.
	h2 := GraphNotificationHandler(q, nil, func() string { return "" }, nil)
	n := len(q.got())
	if w := post(h2, "/webhooks/graph", `{"value":[{"subscriptionId":"x","changeType":"updated"}]}`); w.Code != http.StatusAccepted || len(q.got()) != n {
		t.Fatalf("no secret: %d %v", w.Code, q.got())
	}
}

func TestGraphBadPayloads(t *testing.T) {
	q := &fakeQueue{}
	h, o, _ := newGraphHandler(t, q, nil)
	for _, body := range []string{``, `{`, `[]`, `{"value":null}`, `{"value":{}}`, `{"other":[]}`, `{"value":[1,2]}`, `"x"`} {
		if w := post(h, "/webhooks/graph", body); w.Code != http.StatusBadRequest {
			t.Errorf("%q: %d", body, w.Code)
		}
	}
	if w := post(h, "/webhooks/graph", `{"value":[{"clientState":"`+strings.Repeat("x", MaxGraphNotificationBody)+`"}]}`); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge: %d", w.Code)
	}
	if len(q.got()) != 0 || o.get(GraphBadRequest) != 9 {
		t.Fatalf("%v %v", q.got(), o.n)
	}
	if w := post(h, "/webhooks/graph", `{"value":[]}`); w.Code != http.StatusAccepted {
		t.Fatalf("empty collection: %d", w.Code)
	}
}

func TestGraphQueueFullAndSlow(t *testing.T) {
	full := &fakeQueue{full: true}
	h, o, _ := newGraphHandler(t, full, nil)
	w := post(h, "/webhooks/graph", readTestdata(t, "notification.json"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || o.get(GraphQueueFull) != 1 {
		t.Fatalf("full queue: %d %v", w.Code, w.Header())
	}

	// A queue that blocks (against its contract) still gets Graph its
	// answer well within 3 s.
	blocked := &fakeQueue{block: make(chan struct{})}
	h, o, _ = newGraphHandler(t, blocked, nil, WithGraphEnqueueBudget(200*time.Millisecond))
	srv := httptest.NewServer(h)
	defer srv.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(srv.URL+"/webhooks/graph", "application/json", strings.NewReader(readTestdata(t, "notification.json")))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("blocked queue: %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("answers took %s with a blocked queue", took)
	}
	if o.get(GraphQueueSlow) != 5 {
		t.Fatalf("%v", o.n)
	}
	close(blocked.block)
	deadline := time.Now().Add(5 * time.Second)
	for len(blocked.got()) != 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(blocked.got()) != 5 {
		t.Fatalf("late enqueues lost: %d", len(blocked.got()))
	}
}

func TestGraphLifecycle(t *testing.T) {
	q := &fakeQueue{}
	subs := newFakeSubs()
	subs.release = make(chan struct{})
	h, o, _ := newGraphHandler(t, q, subs)
	life := func(event string) string {
		return `{"value":[{"subscriptionId":"s1","clientState":"` + testClientState + `","lifecycleEvent":"` + event + `"}]}`
	}
	// reauthorizationRequired: the manager acts, in the background; no run.
	start := time.Now()
	if w := post(h, "/webhooks/graph/lifecycle", life("reauthorizationRequired")); w.Code != http.StatusAccepted {
		t.Fatal(w.Code)
	}
	if got := <-subs.calls; got != "reauthorize s1" {
		t.Fatal(got)
	}
	// Repeated while the first action runs: not started twice.
	post(h, "/webhooks/graph/lifecycle", life("reauthorizationRequired"))
	if time.Since(start) > time.Second {
		t.Fatal("the handler waited for the manager")
	}
	if len(q.got()) != 0 {
		t.Fatalf("reauthorization queued a run: %v", q.got())
	}
	// subscriptionRemoved: recreate, and a delta round for the gap.
	post(h, "/webhooks/graph/lifecycle", life("subscriptionRemoved"))
	if got := <-subs.calls; got != "recreate s1" {
		t.Fatal(got)
	}
	close(subs.release)
	select {
	case got := <-subs.calls:
		t.Fatalf("a repeated lifecycle notification ran twice: %s", got)
	case <-time.After(50 * time.Millisecond):
	}
	// missed: a delta round.
	post(h, "/webhooks/graph/lifecycle", life("missed"))
	post(h, "/webhooks/graph/lifecycle", life("somethingNew"))
	if ev := q.got(); len(ev) != 2 || ev[0].Kind != EventDelta || ev[1].Kind != EventDelta {
		t.Fatalf("%+v", ev)
	}
	if o.get("lifecycle_reauthorizationRequired") != 2 || o.get("lifecycle_missed") != 1 || o.get("lifecycle_subscriptionRemoved") != 1 {
		t.Fatalf("%v", o.n)
	}
	// Once finished, the same event may run again.
	deadline := time.Now().Add(2 * time.Second)
	for {
		post(h, "/webhooks/graph/lifecycle", life("reauthorizationRequired"))
		select {
		case got := <-subs.calls:
			if got != "reauthorize s1" {
				t.Fatal(got)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("a finished lifecycle action blocks the next one")
		}
	}
}

// FuzzGraphNotifications: whatever arrives, the handler answers one of its
// statuses, never panics, and queues at most one event.
func FuzzGraphNotifications(f *testing.F) {
	for _, name := range []string{"notification.json", "lifecycle.json"} {
		b, err := os.ReadFile("testdata/graph/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
	f.Add([]byte(nil), "validationToken=abc%20def")
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		q := &fakeQueue{}
		subs := &fakeSubs{calls: make(chan string, 1024)}
		h := GraphNotificationHandler(q, subs, func() string { return testClientState }, zap.NewNop())
		r := httptest.NewRequest(http.MethodPost, "/webhooks/graph", strings.NewReader(string(body)))
		r.URL.RawQuery = query
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d", w.Code)
		}
		if len(q.got()) > 1 {
			t.Fatalf("%d events for one request", len(q.got()))
		}
	})
}

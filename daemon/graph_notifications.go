package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	gsync "github.com/groupsync/groupsync/sync"
)

// Microsoft Graph change notifications (POST /webhooks/graph, and its
// lifecycle URL, e.g. /webhooks/graph/lifecycle: the same handler serves
// both, as Graph allows one URL for both kinds).
//
// Graph first validates the URL: POST ?validationToken=<token>, answered
// 200 text/plain with the decoded token within 10 s. Then it POSTs
// {"value":[...]} collections and wants a 2xx within 3 s, or it retries for
// up to 4 hours and, if slow answers persist, throttles and then drops the
// endpoint. Group notifications are basic ones: they carry only the
// changed group's id (resourceData.id). A collection becomes ONE event: a
// targeted run of the groups it names, which reads just those groups from
// Graph and from OpenFGA, so a change costs requests in proportion to it;
// an item that names no group (or a lifecycle event saying notifications
// were missed) makes it a delta run instead, reading the source's changes
// from the last deltaLink. The queue coalesces bursts, and the scheduled
// run stays the backstop. Nothing here waits for Graph or the run loop.

// SubscriptionReauthorizer acts on lifecycle notifications;
// *msgraph.Subscriptions implements it. An interface, so that the daemon
// does not import the Graph SDK.
type SubscriptionReauthorizer interface {
	// Reauthorize answers reauthorizationRequired for the subscription.
	Reauthorize(ctx context.Context, subscriptionID string) error
	// Recreate answers subscriptionRemoved for the subscription.
	Recreate(ctx context.Context, subscriptionID string) error
}

// Outcomes reported to WithGraphObserver, one per request unless noted.
const (
	GraphValidation       = "validation"            // handshake answered
	GraphEnqueued         = "enqueued"              // an EventDelta was queued (or coalesced)
	GraphQueueFull        = "queue_full"            // the queue refused: 503, Graph retries
	GraphQueueSlow        = "queue_slow"            // Enqueue did not return in time: 202 anyway
	GraphNothingToDo      = "nothing_to_do"         // valid, but no item asked for a run
	GraphBadRequest       = "bad_request"           // not a notification collection: 400
	GraphClientStateWrong = "client_state_mismatch" // per item: ignored
	GraphLifecyclePrefix  = "lifecycle_"            // per item: lifecycle_<event>
	GraphLifecycleFailed  = "lifecycle_failed"      // per item: the manager's action failed
)

// MaxGraphNotificationBody caps a notification collection. Basic
// notifications are a few hundred bytes each.
const MaxGraphNotificationBody = 1 << 20

// maxValidationToken caps the echoed token; Graph's are about 150 bytes.
const maxValidationToken = 4096

// GraphOption adjusts GraphNotificationHandler.
type GraphOption func(*graphHandler)

// WithGraphObserver calls fn with each outcome (the constants above), for
// a metric such as groupsync_webhook_requests_total{source="graph",outcome}.
// fn must not block.
func WithGraphObserver(fn func(outcome string)) GraphOption {
	return func(h *graphHandler) { h.observe = fn }
}

// WithGraphContext is the context of the lifecycle actions (reauthorize,
// recreate) run in the background: cancel it at shutdown.
func WithGraphContext(ctx context.Context) GraphOption {
	return func(h *graphHandler) { h.ctx = ctx }
}

// WithGraphEnqueueBudget is how long the handler waits for
// EventQueue.Enqueue before answering 202 anyway, 1 s by default: Enqueue
// is meant not to block, and Graph's 3 s must hold even if it does.
func WithGraphEnqueueBudget(d time.Duration) GraphOption {
	return func(h *graphHandler) { h.budget = d }
}

// GraphNotificationHandler returns the handler for Graph's notification
// and lifecycle URLs. clientState returns the subscription's secret (read
// per request: a new subscription may bring a new one); subs may be nil
// when lifecycle notifications are not configured.
//
// Answers: 200 for the validation handshake; 202 for a collection, also
// when items are ignored (a clientState that does not match is logged and
// counted, but a 4xx would only make Graph retry a stale subscription's
// notifications for hours, and tells a forger nothing a 202 does not); 503
// with Retry-After when the queue is full, so that Graph delivers again
// later; 400 for a body that is not a notification collection; 413 beyond
// MaxGraphNotificationBody; 405 for other methods.
func GraphNotificationHandler(queue EventQueue, subs SubscriptionReauthorizer, clientState func() string, log *zap.Logger, opts ...GraphOption) http.Handler {
	h := &graphHandler{queue: queue, subs: subs, clientState: clientState, log: log,
		ctx: context.Background(), budget: time.Second, observe: func(string) {}, inflight: map[string]bool{}}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.clientState == nil {
		// No secret: every item is ignored.
		h.clientState = func() string { return "" }
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

type graphHandler struct {
	queue       EventQueue
	subs        SubscriptionReauthorizer
	clientState func() string
	log         *zap.Logger
	ctx         context.Context
	budget      time.Duration
	observe     func(string)

	mu       sync.Mutex
	inflight map[string]bool // lifecycle actions running, by event and subscription
}

// graphNotification is one item of a changeNotificationCollection; only
// what the handler uses.
type graphNotification struct {
	SubscriptionID string `json:"subscriptionId"`
	ClientState    string `json:"clientState"`
	ChangeType     string `json:"changeType"`
	Resource       string `json:"resource"`
	ResourceData   *struct {
		ID string `json:"id"`
	} `json:"resourceData"`
	LifecycleEvent string `json:"lifecycleEvent"`
	TenantID       string `json:"tenantId"`
}

// groupID is the id of the group a change notification is about, or ""
// when it names none: resourceData.id, else the id in "Groups/{id}".
func (n graphNotification) groupID() string {
	id := ""
	if n.ResourceData != nil {
		id = n.ResourceData.ID
	}
	if id == "" {
		if typ, rest, ok := strings.Cut(n.Resource, "/"); ok && strings.EqualFold(typ, "groups") {
			id = rest
		}
	}
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/#: \t\r\n") {
		return ""
	}
	return id
}

type graphCollection struct {
	Value *[]graphNotification `json:"value"`
}

func (h *graphHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	received := time.Now()
	// Query().Get decodes the token, as Graph requires.
	if q := r.URL.Query(); q.Has("validationToken") {
		h.serveValidation(w, q.Get("validationToken"))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxGraphNotificationBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.bad(w, r, http.StatusRequestEntityTooLarge, "the body is larger than a notification collection may be")
			return
		}
		h.bad(w, r, http.StatusBadRequest, "cannot read the body")
		return
	}
	var c graphCollection
	if err := json.Unmarshal(data, &c); err != nil || c.Value == nil {
		h.bad(w, r, http.StatusBadRequest, "not a Graph notification collection ({\"value\":[...]})")
		return
	}
	secret := h.clientState()
	// Hashes compare in constant time whatever the lengths.
	want := sha256.Sum256([]byte(secret))
	run, delta := false, false
	var groups []string
	for _, n := range *c.Value {
		// Every item: Graph may batch items of several subscriptions.
		got := sha256.Sum256([]byte(n.ClientState))
		if secret == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			h.observe(GraphClientStateWrong)
			h.log.Warn("Graph notification ignored: wrong clientState (forged, or from a subscription this daemon no longer keeps)",
				zap.String("subscription", n.SubscriptionID), zap.String("remote", r.RemoteAddr))
			continue
		}
		if n.LifecycleEvent == "" {
			run = true
			// A deleted group can no longer be read by its id, and its
			// objects are named by what the mapping keys them on: a delta
			// run finds out what went.
			if id := n.groupID(); id != "" && !strings.EqualFold(n.ChangeType, "deleted") {
				groups = append(groups, id)
			} else {
				delta = true
			}
			continue
		}
		h.observe(GraphLifecyclePrefix + n.LifecycleEvent)
		h.log.Info("Graph lifecycle notification", zap.String("event", n.LifecycleEvent), zap.String("subscription", n.SubscriptionID))
		switch n.LifecycleEvent {
		case "reauthorizationRequired":
			h.lifecycle(n.LifecycleEvent, n.SubscriptionID, SubscriptionReauthorizer.Reauthorize)
		case "subscriptionRemoved":
			// Changes until the new subscription are not notified.
			h.lifecycle(n.LifecycleEvent, n.SubscriptionID, SubscriptionReauthorizer.Recreate)
			run, delta = true, true
		case "missed":
			run, delta = true, true
		default:
			h.log.Warn("unknown Graph lifecycle event; ignored", zap.String("event", n.LifecycleEvent))
		}
	}
	if !run {
		h.observe(GraphNothingToDo)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	event := Event{Kind: EventDelta, Origin: OriginGraph, Received: received}
	if !delta {
		slices.Sort(groups)
		event = Event{Kind: EventSlice, Slice: gsync.Slice{Groups: slices.Compact(groups)}, Origin: OriginGraph, Received: received}
	}
	switch err := h.enqueue(event); {
	case errors.Is(err, ErrQueueFull):
		h.observe(GraphQueueFull)
		h.log.Warn("Graph notification refused: the event queue is full; Graph will deliver it again")
		w.Header().Set("Retry-After", "30")
		http.Error(w, ErrQueueFull.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, errEnqueueSlow):
		h.observe(GraphQueueSlow)
		h.log.Warn("the event queue did not take a Graph notification in time; answered 202 and left it to finish", zap.Duration("budget", h.budget))
		w.WriteHeader(http.StatusAccepted)
	case err != nil:
		h.observe(GraphQueueFull)
		h.log.Error("the event queue refused a Graph notification", zap.Error(err))
		w.Header().Set("Retry-After", "30")
		http.Error(w, "cannot queue the notification", http.StatusServiceUnavailable)
	default:
		h.observe(GraphEnqueued)
		w.WriteHeader(http.StatusAccepted)
	}
}

func (h *graphHandler) serveValidation(w http.ResponseWriter, token string) {
	if token == "" || len(token) > maxValidationToken {
		h.observe(GraphBadRequest)
		http.Error(w, "bad validationToken", http.StatusBadRequest)
		return
	}
	h.observe(GraphValidation)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// The token is echoed verbatim, as Graph requires; nosniff keeps a
	// browser from reading it as HTML.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, token)
}

func (h *graphHandler) bad(w http.ResponseWriter, r *http.Request, status int, why string) {
	h.observe(GraphBadRequest)
	h.log.Warn("bad Graph notification request", zap.String("reason", why), zap.String("remote", r.RemoteAddr))
	http.Error(w, why, status)
}

var errEnqueueSlow = errors.New("the event queue did not take the event in time")

// enqueue calls Enqueue, waiting at most the budget.
func (h *graphHandler) enqueue(e Event) error {
	done := make(chan error, 1)
	go func() { done <- h.queue.Enqueue(e) }()
	t := time.NewTimer(h.budget)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errEnqueueSlow
	}
}

// lifecycle runs a manager action in the background, once at a time per
// event and subscription: Graph may repeat a lifecycle notification while
// the action runs.
func (h *graphHandler) lifecycle(event, id string, action func(SubscriptionReauthorizer, context.Context, string) error) {
	if h.subs == nil {
		h.log.Warn("Graph lifecycle notification, but no subscription manager to act on it", zap.String("event", event))
		return
	}
	key := event + "\x00" + id
	h.mu.Lock()
	if h.inflight[key] {
		h.mu.Unlock()
		return
	}
	h.inflight[key] = true
	h.mu.Unlock()
	go func() {
		defer func() {
			h.mu.Lock()
			delete(h.inflight, key)
			h.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
		defer cancel()
		if err := action(h.subs, ctx, id); err != nil {
			h.observe(GraphLifecycleFailed)
			h.log.Error("cannot act on a Graph lifecycle notification; the scheduled run still repairs what is missed",
				zap.String("event", event), zap.String("subscription", id), zap.Error(err))
		}
	}()
}

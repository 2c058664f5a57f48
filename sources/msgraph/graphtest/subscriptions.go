package graphtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Change notifications, as Graph serves them for groups:
//
//	POST   /v1.0/subscriptions                  create; Graph first validates notificationUrl (and lifecycleNotificationUrl)
//	GET    /v1.0/subscriptions                  the app's subscriptions, clientState null
//	GET    /v1.0/subscriptions/{id}
//	PATCH  /v1.0/subscriptions/{id}             renew: expirationDateTime
//	DELETE /v1.0/subscriptions/{id}
//	POST   /v1.0/subscriptions/{id}/reauthorize
//
// Resources "groups" and "groups/{id}" with changeType updated and/or
// deleted; expirationDateTime at most 41760 minutes ahead; clientState at
// most 128 characters; the app needs Group.Read.All (or Directory.Read.All,
// or their ReadWrite forms): GroupMember.Read.All is not documented as
// enough. Expired subscriptions disappear.
//
// Creating a subscription POSTs ?validationToken=... (text/plain) to each URL
// and fails with 400 unless the URL answers 200, text/plain, the decoded
// token, within 10 seconds. Graph only calls https URLs; graphtest also calls
// http ones on loopback hosts, so that a test's httptest.Server can listen.
//
// Every Mutate, RemoveGroup or RemoveUser that changes a group or its
// members POSTs basic notifications (no resource data beyond the id) to the
// notificationUrl of each subscription that covers it, one POST per URL, with
// the subscription's clientState, over a client that gives up after 3
// seconds, as Graph does. A removed group is notified as "deleted" when the
// subscription asked for it, else as "updated". Deliveries are asynchronous:
// WaitNotifications waits for them, Deliveries lists them. Graph retries
// failed deliveries for up to 4 hours; graphtest does not retry. Notify sends
// notifications without a change, SendLifecycle lifecycle notifications, and
// RemoveSubscription removes one as Graph does, with subscriptionRemoved.

// MaxSubscriptionLifetime is the longest expirationDateTime Graph accepts
// for groups: 41760 minutes, under 29 days.
const MaxSubscriptionLifetime = 41760 * time.Minute

const (
	validationTimeout   = 10 * time.Second
	notificationTimeout = 3 * time.Second
	maxClientState      = 128
)

// Subscription is a subscription as the server keeps it.
type Subscription struct {
	ID              string
	Resource        string
	ChangeType      string
	NotificationURL string
	LifecycleURL    string
	ClientState     string
	Expiration      time.Time
	// Reauthorized counts reauthorize calls and renewals; NeedsReauth is
	// set by a reauthorizationRequired lifecycle notification and cleared
	// by either.
	Reauthorized int
	NeedsReauth  bool
}

// Delivery is one POST the server sent to a subscriber.
type Delivery struct {
	URL       string
	Kind      string // "validation", "notification" or "lifecycle"
	Items     int    // notifications in the collection
	Status    int    // 0 when there was no answer
	Err       error
	Took      time.Duration
	Slow      bool // answered after 2900 ms: Graph counts it against the endpoint
	Lifecycle string
}

// subStore is the server's subscriptions.
type subStore struct {
	mu         sync.Mutex
	subs       map[string]*Subscription
	seq        int
	deliveries []Delivery
	wg         sync.WaitGroup
	client     *http.Client
}

type subRouteKind int

const (
	subNone subRouteKind = iota
	subCollection
	subItem
	subReauthorize
)

type subRoute struct {
	kind subRouteKind
	id   string
}

// parseSubscriptionRoute routes /v1.0/subscriptions[/{id}[/reauthorize]].
func parseSubscriptionRoute(seg []string) route {
	rt := route{ep: EndpointOther, err: newError(http.StatusNotImplemented, "NotImplemented", "graphtest does not implement subscriptions inside $batch.")}
	switch {
	case len(seg) == 1:
		rt.sub = subRoute{kind: subCollection}
	case len(seg) == 2:
		rt.sub = subRoute{kind: subItem, id: seg[1]}
	case len(seg) == 3 && strings.EqualFold(strings.TrimSuffix(seg[2], "()"), "reauthorize"):
		rt.sub = subRoute{kind: subReauthorize, id: seg[1]}
	default:
		return route{ep: EndpointOther, err: newError(http.StatusNotImplemented, "NotImplemented", "graphtest does not implement /v1.0/%s.", strings.Join(seg, "/"))}
	}
	return rt
}

// SetNotificationClient replaces the HTTP client that validates URLs and
// delivers notifications (one that trusts a TLS test server, say). Its
// timeouts are replaced by Graph's: 10 s to validate, 3 s to deliver.
func (s *Server) SetNotificationClient(c *http.Client) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	s.subs.client = c
}

func (s *Server) notificationClient() *http.Client {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	if s.subs.client == nil {
		return http.DefaultClient
	}
	return s.subs.client
}

// Subscriptions returns the live subscriptions, sorted by id.
func (s *Server) Subscriptions() []Subscription {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	s.expireLocked()
	out := make([]Subscription, 0, len(s.subs.subs))
	for _, sub := range s.subs.subs {
		out = append(out, *sub)
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Deliveries returns every POST sent to subscribers so far.
func (s *Server) Deliveries() []Delivery {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	return slices.Clone(s.subs.deliveries)
}

// WaitNotifications waits until the notifications sent so far were answered.
func (s *Server) WaitNotifications() { s.subs.wg.Wait() }

// ExpireSubscription makes a subscription expire now, as if it had not
// been renewed in time; it reports whether it existed.
func (s *Server) ExpireSubscription(id string) bool {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	sub, ok := s.subs.subs[id]
	if ok {
		sub.Expiration = s.clock().Add(-time.Second)
		s.expireLocked()
	}
	return ok
}

// RemoveSubscription removes a subscription as Graph does on its own
// (access revoked, say): gone from the list, and a subscriptionRemoved
// lifecycle notification sent when it has a lifecycle URL.
func (s *Server) RemoveSubscription(id string) error {
	s.subs.mu.Lock()
	sub, ok := s.subs.subs[id]
	if ok {
		delete(s.subs.subs, id)
	}
	s.subs.mu.Unlock()
	if !ok {
		return fmt.Errorf("graphtest: no subscription %s", id)
	}
	if sub.LifecycleURL != "" {
		s.sendLifecycle(*sub, "subscriptionRemoved")
	}
	return nil
}

// SendLifecycle sends a lifecycle notification (reauthorizationRequired,
// missed, subscriptionRemoved) for a subscription to its
// lifecycleNotificationUrl. reauthorizationRequired also marks it as
// needing reauthorization; subscriptionRemoved does not remove it (see
// RemoveSubscription).
func (s *Server) SendLifecycle(id, event string) error {
	s.subs.mu.Lock()
	sub, ok := s.subs.subs[id]
	var c Subscription
	if ok {
		if event == "reauthorizationRequired" {
			sub.NeedsReauth = true
		}
		c = *sub
	}
	s.subs.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("graphtest: no subscription %s", id)
	case c.LifecycleURL == "":
		return fmt.Errorf("graphtest: subscription %s has no lifecycleNotificationUrl: Graph sends it no lifecycle notifications", id)
	}
	s.sendLifecycle(c, event)
	return nil
}

func (s *Server) sendLifecycle(sub Subscription, event string) {
	item := map[string]any{
		"subscriptionId":                 sub.ID,
		"subscriptionExpirationDateTime": graphTime(sub.Expiration),
		"tenantId":                       s.cfg.tenantID,
		"clientState":                    nullable(sub.ClientState),
		"lifecycleEvent":                 event,
	}
	s.deliver(sub.LifecycleURL, "lifecycle", event, []map[string]any{item})
}

// Notify sends "updated" notifications for the groups, as a change to them
// would, to every subscription that covers them.
func (s *Server) Notify(groupIDs ...string) {
	changes := make(map[string]string, len(groupIDs))
	for _, id := range groupIDs {
		changes[id] = "updated"
	}
	s.notifyGroups(changes)
}

// notifyTenantChange notifies the groups that differ between two tenants.
func (s *Server) notifyTenantChange(old, cur *index) {
	s.subs.mu.Lock()
	n := len(s.subs.subs)
	s.subs.mu.Unlock()
	if n == 0 || old == cur {
		return
	}
	cs := diffIndexes(old, cur)
	changes := map[string]string{}
	for _, g := range cs.groups {
		if _, ok := cur.lookup(kindGroup, g.id); ok {
			changes[g.id] = "updated"
		} else {
			changes[g.id] = "deleted"
		}
	}
	for _, p := range cs.pairs {
		if _, seen := changes[p.group]; !seen {
			changes[p.group] = "updated"
		}
	}
	s.notifyGroups(changes)
}

// notifyGroups delivers one collection per notification URL.
func (s *Server) notifyGroups(changes map[string]string) {
	if len(changes) == 0 {
		return
	}
	ids := make([]string, 0, len(changes))
	for id := range changes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	byURL := map[string][]map[string]any{}
	var urls []string
	s.subs.mu.Lock()
	s.expireLocked()
	subs := make([]*Subscription, 0, len(s.subs.subs))
	for _, sub := range s.subs.subs {
		subs = append(subs, sub)
	}
	slices.SortFunc(subs, func(a, b *Subscription) int { return strings.Compare(a.ID, b.ID) })
	for _, sub := range subs {
		types := strings.Split(strings.ToLower(sub.ChangeType), ",")
		_, one, single := strings.Cut(strings.TrimPrefix(strings.ToLower(sub.Resource), "/"), "/")
		for _, id := range ids {
			if single && !strings.EqualFold(one, id) {
				continue
			}
			ct := changes[id]
			if ct == "deleted" && !slices.Contains(types, "deleted") {
				ct = "updated"
			}
			if !slices.Contains(types, ct) {
				continue
			}
			if _, ok := byURL[sub.NotificationURL]; !ok {
				urls = append(urls, sub.NotificationURL)
			}
			byURL[sub.NotificationURL] = append(byURL[sub.NotificationURL], map[string]any{
				"subscriptionId":                 sub.ID,
				"subscriptionExpirationDateTime": graphTime(sub.Expiration),
				"changeType":                     ct,
				"resource":                       "Groups/" + id,
				"resourceData": map[string]any{
					"@odata.type":    "#Microsoft.Graph.Group",
					"@odata.id":      "Groups/" + id,
					"id":             id,
					"organizationId": s.cfg.tenantID,
				},
				"clientState": nullable(sub.ClientState),
				"tenantId":    s.cfg.tenantID,
			})
		}
	}
	s.subs.mu.Unlock()
	for _, u := range urls {
		s.deliver(u, "notification", "", byURL[u])
	}
}

// deliver POSTs a notification collection in the background.
func (s *Server) deliver(u, kind, event string, items []map[string]any) {
	body, _ := json.Marshal(map[string]any{"value": items})
	client := s.notificationClient()
	s.subs.wg.Add(1)
	go func() {
		defer s.subs.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), notificationTimeout)
		defer cancel()
		d := Delivery{URL: u, Kind: kind, Items: len(items), Lifecycle: event}
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				d.Status = resp.StatusCode
			}
		}
		d.Err, d.Took = err, time.Since(start)
		d.Slow = d.Took > 2900*time.Millisecond
		s.record(d)
	}()
}

func (s *Server) record(d Delivery) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	s.subs.deliveries = append(s.subs.deliveries, d)
}

// validate performs Graph's handshake against a subscriber URL.
func (s *Server) validate(ctx context.Context, target string) error {
	// Real tokens are sentences with spaces and colons: the subscriber
	// must URL-decode.
	s.subs.mu.Lock()
	s.subs.seq++
	token := fmt.Sprintf("Validation: Testing client application reachability for subscription Request-Id: %08x-graphtest+%d", s.requestSeq.Load(), s.subs.seq)
	s.subs.mu.Unlock()
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("validationToken", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	start := time.Now()
	resp, err := s.notificationClient().Do(req)
	d := Delivery{URL: target, Kind: "validation", Err: err}
	defer func() { d.Took = time.Since(start); s.record(d) }()
	if err != nil {
		return fmt.Errorf("no answer within %s: %v", validationTimeout, err)
	}
	defer resp.Body.Close()
	d.Status = resp.StatusCode
	got, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case err != nil:
		return fmt.Errorf("reading the answer: %v", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("answered %d", resp.StatusCode)
	case !strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/plain"):
		return fmt.Errorf("answered Content-Type %q, not text/plain", resp.Header.Get("Content-Type"))
	case string(got) != token:
		return fmt.Errorf("answered %q, not the decoded token", truncate(string(got), 200))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// subscriptionBody is what a client may send.
type subscriptionBody struct {
	ChangeType               *string `json:"changeType"`
	NotificationURL          *string `json:"notificationUrl"`
	LifecycleNotificationURL *string `json:"lifecycleNotificationUrl"`
	Resource                 *string `json:"resource"`
	ExpirationDateTime       *string `json:"expirationDateTime"`
	ClientState              *string `json:"clientState"`
}

// readSubscriptionBody decodes a subscription, gzip-compressed or not (the
// SDK compresses request bodies).
func readSubscriptionBody(r *http.Request) (subscriptionBody, *graphError) {
	var b subscriptionBody
	var body io.Reader = io.LimitReader(r.Body, 1<<20)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return b, invalidRequest("The request body is not valid gzip: %v", err)
		}
		defer zr.Close()
		body = io.LimitReader(zr, 1<<20)
	default:
		return b, newError(http.StatusUnsupportedMediaType, "BadRequest", "Content-Encoding '%s' is not supported.", enc)
	}
	if err := json.NewDecoder(body).Decode(&b); err != nil {
		return b, invalidRequest("The request body is not valid JSON: %v", err)
	}
	return b, nil
}

func invalidRequest(format string, args ...any) *graphError {
	return newError(http.StatusBadRequest, "InvalidRequest", format, args...)
}

var subscriptionNotFound = newError(http.StatusNotFound, "ResourceNotFound", "The object was not found.")

// serveSubscription answers /v1.0/subscriptions requests.
func (s *Server) serveSubscription(w http.ResponseWriter, r *http.Request, rt route) {
	if err := s.authenticate(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case rt.sub.kind == subCollection && r.Method == http.MethodPost:
		s.createSubscription(w, r)
	case rt.sub.kind == subCollection && r.Method == http.MethodGet:
		s.subs.mu.Lock()
		s.expireLocked()
		var items [][]byte
		ids := make([]string, 0, len(s.subs.subs))
		for id := range s.subs.subs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			items = append(items, s.subscriptionJSON(s.subs.subs[id], false))
		}
		s.subs.mu.Unlock()
		body := []byte(`{"@odata.context":"` + s.URL + `/v1.0/$metadata#subscriptions","value":[` + string(bytes.Join(items, []byte(","))) + `]}`)
		s.writeJSON(w, http.StatusOK, body)
	case rt.sub.kind == subItem && r.Method == http.MethodGet:
		s.withSubscription(w, r, rt.sub.id, func(sub *Subscription) (int, []byte) {
			return http.StatusOK, s.subscriptionJSON(sub, false)
		})
	case rt.sub.kind == subItem && r.Method == http.MethodPatch:
		b, gerr := readSubscriptionBody(r)
		if gerr != nil {
			s.writeError(w, r, gerr)
			return
		}
		var exp time.Time
		if b.ExpirationDateTime != nil {
			if exp, gerr = s.checkExpiration(*b.ExpirationDateTime); gerr != nil {
				s.writeError(w, r, gerr)
				return
			}
		}
		s.withSubscription(w, r, rt.sub.id, func(sub *Subscription) (int, []byte) {
			if !exp.IsZero() {
				sub.Expiration = exp
			}
			// A renewal also reauthorizes.
			sub.Reauthorized++
			sub.NeedsReauth = false
			return http.StatusOK, s.subscriptionJSON(sub, false)
		})
	case rt.sub.kind == subItem && r.Method == http.MethodDelete:
		s.withSubscription(w, r, rt.sub.id, func(sub *Subscription) (int, []byte) {
			delete(s.subs.subs, sub.ID)
			return http.StatusNoContent, nil
		})
	case rt.sub.kind == subReauthorize && r.Method == http.MethodPost:
		s.withSubscription(w, r, rt.sub.id, func(sub *Subscription) (int, []byte) {
			sub.Reauthorized++
			sub.NeedsReauth = false
			return http.StatusNoContent, nil
		})
	default:
		s.writeError(w, r, newError(http.StatusMethodNotAllowed, "Request_BadRequest", "graphtest does not implement %s %s.", r.Method, r.URL.Path))
	}
}

// withSubscription runs fn on a live subscription under the lock, or
// answers 404.
func (s *Server) withSubscription(w http.ResponseWriter, r *http.Request, id string, fn func(*Subscription) (int, []byte)) {
	s.subs.mu.Lock()
	s.expireLocked()
	sub, ok := s.subs.subs[id]
	var status int
	var body []byte
	if ok {
		status, body = fn(sub)
	}
	s.subs.mu.Unlock()
	switch {
	case !ok:
		s.writeError(w, r, subscriptionNotFound)
	case body == nil:
		w.WriteHeader(status)
	default:
		s.writeJSON(w, status, body)
	}
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) {
	b, gerr := readSubscriptionBody(r)
	if gerr != nil {
		s.writeError(w, r, gerr)
		return
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	resource := strings.TrimPrefix(str(b.Resource), "/")
	seg := strings.Split(resource, "/")
	switch {
	case resource == "":
		s.writeError(w, r, invalidRequest("resource is a required property for subscription creation."))
		return
	case !strings.EqualFold(seg[0], "groups") || len(seg) > 2:
		s.writeError(w, r, newError(http.StatusNotImplemented, "NotImplemented", "graphtest implements subscriptions on groups and groups/{id} only, not %s.", resource))
		return
	}
	for _, ct := range strings.Split(str(b.ChangeType), ",") {
		switch strings.TrimSpace(ct) {
		case "updated", "deleted":
		default:
			s.writeError(w, r, invalidRequest("ChangeType '%s' is not supported for resource '%s': groups support updated and deleted.", ct, resource))
			return
		}
	}
	if len(str(b.ClientState)) > maxClientState {
		s.writeError(w, r, invalidRequest("clientState must be at most %d characters long.", maxClientState))
		return
	}
	if b.ExpirationDateTime == nil {
		s.writeError(w, r, invalidRequest("expirationDateTime is a required property for subscription creation."))
		return
	}
	exp, gerr := s.checkExpiration(*b.ExpirationDateTime)
	if gerr != nil {
		s.writeError(w, r, gerr)
		return
	}
	urls := []string{str(b.NotificationURL)}
	if l := str(b.LifecycleNotificationURL); l != "" {
		urls = append(urls, l)
	}
	for i, u := range urls {
		if err := checkSubscriberURL(u); err != nil {
			s.writeError(w, r, invalidRequest("%s %v", []string{"notificationUrl", "lifecycleNotificationUrl"}[i], err))
			return
		}
	}
	if !s.permissions().anyOf("Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All") {
		s.writeError(w, r, newError(http.StatusForbidden, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]"))
		return
	}
	for _, u := range urls {
		if err := s.validate(r.Context(), u); err != nil {
			s.writeError(w, r, invalidRequest("Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. (graphtest: %s %v)", u, err))
			return
		}
	}
	s.subs.mu.Lock()
	if s.subs.subs == nil {
		s.subs.subs = map[string]*Subscription{}
	}
	s.subs.seq++
	sub := &Subscription{
		ID:              fmt.Sprintf("5ab5c0de-0000-4000-8000-%012x", s.subs.seq),
		Resource:        resource,
		ChangeType:      str(b.ChangeType),
		NotificationURL: str(b.NotificationURL),
		LifecycleURL:    str(b.LifecycleNotificationURL),
		ClientState:     str(b.ClientState),
		Expiration:      exp,
	}
	s.subs.subs[sub.ID] = sub
	body := s.subscriptionJSON(sub, true)
	s.subs.mu.Unlock()
	s.writeJSON(w, http.StatusCreated, body)
}

// checkSubscriberURL accepts https URLs, and http ones on loopback hosts.
func checkSubscriberURL(raw string) error {
	if raw == "" {
		return errors.New("is a required property for subscription creation")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a valid URL", raw)
	}
	h := u.Hostname()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (h == "localhost" || h == "127.0.0.1" || h == "::1"):
	default:
		return fmt.Errorf("%q must use https", raw)
	}
	return nil
}

func (s *Server) checkExpiration(raw string) (time.Time, *graphError) {
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, invalidRequest("expirationDateTime %q is not a valid date and time.", raw)
	}
	now := s.clock()
	switch {
	case !t.After(now):
		return time.Time{}, invalidRequest("Subscription expiration can only be in the future.")
	case t.Sub(now) > MaxSubscriptionLifetime:
		return time.Time{}, invalidRequest("Subscription expiration can only be %d minutes in the future.", int(MaxSubscriptionLifetime/time.Minute))
	}
	return t.UTC(), nil
}

// expireLocked drops the subscriptions past their expiry.
func (s *Server) expireLocked() {
	now := s.clock()
	for id, sub := range s.subs.subs {
		if !now.Before(sub.Expiration) {
			delete(s.subs.subs, id)
		}
	}
}

// subscriptionJSON is Graph's subscription object; clientState only in the
// answer to its creation (Graph never returns it afterwards).
func (s *Server) subscriptionJSON(sub *Subscription, withState bool) []byte {
	m := map[string]any{
		"id":                        sub.ID,
		"resource":                  sub.Resource,
		"applicationId":             s.applicationID(),
		"changeType":                sub.ChangeType,
		"clientState":               nil,
		"notificationUrl":           sub.NotificationURL,
		"notificationQueryOptions":  nil,
		"lifecycleNotificationUrl":  nullable(sub.LifecycleURL),
		"expirationDateTime":        graphTime(sub.Expiration),
		"creatorId":                 "8ee44408-0679-472c-bc2a-692812af3437",
		"includeResourceData":       false,
		"latestSupportedTlsVersion": "v1_2",
		"encryptionCertificate":     nil,
		"encryptionCertificateId":   nil,
		"notificationUrlAppId":      nil,
	}
	if withState {
		m["clientState"] = nullable(sub.ClientState)
		m["@odata.context"] = s.URL + "/v1.0/$metadata#subscriptions/$entity"
	}
	b, _ := json.Marshal(m)
	return b
}

func (s *Server) applicationID() string {
	if s.cfg.clientID != "" {
		return s.cfg.clientID
	}
	return "24d3b144-21ae-4080-943f-7067b395b913"
}

func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

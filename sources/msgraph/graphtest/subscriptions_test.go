package graphtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// subscriber is a notification endpoint that answers the handshake as
// Graph asks and records what it receives.
type subscriber struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   []map[string]any
	got      chan map[string]any
	echo     func(token string) string // what the handshake answers
	ctype    string
	status   int
	validate int
}

func newSubscriber(t *testing.T) *subscriber {
	sub := &subscriber{got: make(chan map[string]any, 16), echo: func(s string) string { return s }, ctype: "text/plain; charset=utf-8", status: http.StatusOK}
	sub.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			sub.mu.Lock()
			sub.validate++
			echo, ctype, status := sub.echo, sub.ctype, sub.status
			sub.mu.Unlock()
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(status)
			io.WriteString(w, echo(tok))
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("notification body: %v", err)
		}
		sub.got <- body
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(sub.Close)
	return sub
}

func subRequest(t *testing.T, s *Server, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	req.Header.Set("Content-Type", "application/json")
	return send(t, s.Client(), req)
}

func createBody(url, lifecycle, state string, exp time.Time) string {
	b, _ := json.Marshal(map[string]any{"changeType": "updated,deleted", "resource": "groups", "notificationUrl": url,
		"lifecycleNotificationUrl": lifecycle, "clientState": state, "expirationDateTime": exp.UTC().Format(time.RFC3339Nano)})
	return string(b)
}

func subscriptionTenant() *Tenant {
	return &Tenant{
		Users:  []User{{ID: "u1", AccountEnabled: true}, {ID: "u2", AccountEnabled: true}},
		Groups: []Group{{ID: "g1", DisplayName: "one", Members: []string{"u1"}}, {ID: "g2", DisplayName: "two"}},
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	s := New(t, subscriptionTenant(), WithPermissions("Group.Read.All"))
	sub := newSubscriber(t)
	a := subRequest(t, s, http.MethodPost, "/v1.0/subscriptions", createBody(sub.URL+"/hook", sub.URL+"/life", "secret", time.Now().Add(time.Hour)))
	if a.status != http.StatusCreated || a.body["clientState"] != "secret" {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	if sub.validate != 2 {
		t.Errorf("validated %d URLs, want both", sub.validate)
	}
	id := a.body["id"].(string)

	list := subRequest(t, s, http.MethodGet, "/v1.0/subscriptions", "")
	if v := list.values(); len(v) != 1 || v[0]["id"] != id || v[0]["clientState"] != nil || v[0]["notificationUrl"] != sub.URL+"/hook" {
		t.Fatalf("list: %s", list.raw)
	}

	// A membership change is notified once, with the clientState.
	if err := s.Mutate(func(t *Tenant) { t.Groups[1].Members = []string{"u2"} }); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications()
	n := <-sub.got
	items := n["value"].([]any)
	item := items[0].(map[string]any)
	if len(items) != 1 || item["subscriptionId"] != id || item["clientState"] != "secret" || item["changeType"] != "updated" ||
		item["resource"] != "Groups/g2" || item["tenantId"] != s.TenantID() {
		t.Fatalf("notification: %v", n)
	}
	s.RemoveGroup("g1")
	s.WaitNotifications()
	n = <-sub.got
	if item := n["value"].([]any)[0].(map[string]any); item["changeType"] != "deleted" || item["resource"] != "Groups/g1" {
		t.Fatalf("removal: %v", n)
	}

	// Renew, reauthorize, lifecycle.
	exp := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	a = subRequest(t, s, http.MethodPatch, "/v1.0/subscriptions/"+id, `{"expirationDateTime":"`+exp.Format(time.RFC3339)+`"}`)
	if a.status != http.StatusOK || a.body["expirationDateTime"] != graphTime(exp) {
		t.Fatalf("renew: %d %s", a.status, a.raw)
	}
	if err := s.SendLifecycle(id, "reauthorizationRequired"); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications()
	n = <-sub.got
	if item := n["value"].([]any)[0].(map[string]any); item["lifecycleEvent"] != "reauthorizationRequired" || item["clientState"] != "secret" {
		t.Fatalf("lifecycle: %v", n)
	}
	if !s.Subscriptions()[0].NeedsReauth {
		t.Fatal("reauthorizationRequired not recorded")
	}
	if a = subRequest(t, s, http.MethodPost, "/v1.0/subscriptions/"+id+"/reauthorize", ""); a.status != http.StatusNoContent {
		t.Fatalf("reauthorize: %d %s", a.status, a.raw)
	}
	if got := s.Subscriptions()[0]; got.NeedsReauth || got.Reauthorized != 2 {
		t.Fatalf("after reauthorize: %+v", got)
	}

	// Too long, expired, deleted.
	a = subRequest(t, s, http.MethodPatch, "/v1.0/subscriptions/"+id, `{"expirationDateTime":"`+time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339)+`"}`)
	if a.errorCode(t, http.StatusBadRequest) != "InvalidRequest" {
		t.Fatal(string(a.raw))
	}
	if a = subRequest(t, s, http.MethodDelete, "/v1.0/subscriptions/"+id, ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.raw)
	}
	if a = subRequest(t, s, http.MethodGet, "/v1.0/subscriptions/"+id, ""); a.errorCode(t, http.StatusNotFound) != "ResourceNotFound" {
		t.Fatal(string(a.raw))
	}
}

func TestSubscriptionRefusals(t *testing.T) {
	s := New(t, subscriptionTenant(), WithPermissions("Group.Read.All"))
	sub := newSubscriber(t)
	soon := time.Now().Add(time.Hour)
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
		setup  func()
	}{
		"too long":         {createBody(sub.URL, "", "x", time.Now().Add(MaxSubscriptionLifetime+time.Hour)), 400, "InvalidRequest", nil},
		"past":             {createBody(sub.URL, "", "x", time.Now().Add(-time.Minute)), 400, "InvalidRequest", nil},
		"long clientState": {createBody(sub.URL, "", strings.Repeat("x", 129), soon), 400, "InvalidRequest", nil},
		"not https":        {createBody("http://example.com/hook", "", "x", soon), 400, "InvalidRequest", nil},
		"created":          {`{"changeType":"created","resource":"groups","notificationUrl":"` + sub.URL + `","expirationDateTime":"` + soon.UTC().Format(time.RFC3339) + `"}`, 400, "InvalidRequest", nil},
		"users":            {`{"changeType":"updated","resource":"users","notificationUrl":"` + sub.URL + `","expirationDateTime":"` + soon.UTC().Format(time.RFC3339) + `"}`, 501, "NotImplemented", nil},
		"encoded echo":     {createBody(sub.URL, "", "x", soon), 400, "InvalidRequest", func() { sub.echo = func(s string) string { return strings.ReplaceAll(s, " ", "+") } }},
		"json echo":        {createBody(sub.URL, "", "x", soon), 400, "InvalidRequest", func() { sub.ctype = "application/json" }},
		"status 202":       {createBody(sub.URL, "", "x", soon), 400, "InvalidRequest", func() { sub.status = http.StatusAccepted }},
		"no permission":    {createBody(sub.URL, "", "x", soon), 403, "ExtensionError", func() { s.SetPermissions("GroupMember.Read.All") }},
	} {
		sub.mu.Lock()
		sub.echo, sub.ctype, sub.status = func(s string) string { return s }, "text/plain", http.StatusOK
		sub.mu.Unlock()
		s.SetPermissions("Group.Read.All")
		if tc.setup != nil {
			sub.mu.Lock()
			tc.setup()
			sub.mu.Unlock()
		}
		a := subRequest(t, s, http.MethodPost, "/v1.0/subscriptions", tc.body)
		if code := a.errorCode(t, tc.status); code != tc.code {
			t.Errorf("%s: code %s: %s", name, code, a.raw)
		}
	}
	if got := s.Subscriptions(); len(got) != 0 {
		t.Fatalf("refused subscriptions exist: %+v", got)
	}
}

func TestSubscriptionExpiryAndRemoval(t *testing.T) {
	s := New(t, subscriptionTenant(), WithPermissions("Directory.Read.All"))
	sub := newSubscriber(t)
	now := time.Now()
	clock := now
	var mu sync.Mutex
	s.setClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	a := subRequest(t, s, http.MethodPost, "/v1.0/subscriptions", createBody(sub.URL, sub.URL, "x", now.Add(time.Hour)))
	id := a.body["id"].(string)
	b := subRequest(t, s, http.MethodPost, "/v1.0/subscriptions", createBody(sub.URL, sub.URL, "x", now.Add(3*time.Hour)))
	mu.Lock()
	clock = now.Add(2 * time.Hour)
	mu.Unlock()
	if got := s.Subscriptions(); len(got) != 1 || got[0].ID != b.body["id"] {
		t.Fatalf("after expiry: %+v", got)
	}
	if a = subRequest(t, s, http.MethodPatch, "/v1.0/subscriptions/"+id, `{}`); a.status != http.StatusNotFound {
		t.Fatalf("renewing an expired subscription: %d", a.status)
	}
	// Graph removes one: subscriptionRemoved.
	if err := s.RemoveSubscription(b.body["id"].(string)); err != nil {
		t.Fatal(err)
	}
	s.WaitNotifications()
	n := <-sub.got
	if item := n["value"].([]any)[0].(map[string]any); item["lifecycleEvent"] != "subscriptionRemoved" {
		t.Fatalf("%v", n)
	}
	// No subscription, no notification.
	s.Notify("g1")
	s.WaitNotifications()
	if d := s.Deliveries(); d[len(d)-1].Lifecycle != "subscriptionRemoved" {
		t.Fatalf("delivered without a subscription: %+v", d[len(d)-1])
	}
}

func TestNotificationTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 3 s")
	}
	s := New(t, subscriptionTenant(), WithPermissions("Group.Read.All"))
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, tok)
			return
		}
		<-release
	}))
	defer slow.Close()
	defer close(release)
	if a := subRequest(t, s, http.MethodPost, "/v1.0/subscriptions", createBody(slow.URL, "", "x", time.Now().Add(time.Hour))); a.status != http.StatusCreated {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	s.Notify("g1")
	s.WaitNotifications()
	d := s.Deliveries()
	last := d[len(d)-1]
	if last.Err == nil || last.Took < notificationTimeout || !last.Slow {
		t.Fatalf("a subscriber slower than 3 s: %+v", last)
	}
}

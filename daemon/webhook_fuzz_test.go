package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// Fuzz targets for the webhook parsers the older targets (FuzzAuthentikPayload,
// FuzzSyncPath, FuzzGraphNotifications) leave unchecked: Graph's
// validation-token handshake, the meaning of each notification item
// (clientState, change, resource, lifecycle event), and the bearer token.

// FuzzGraphValidationToken: Graph's handshake answers 200 with the token,
// decoded, verbatim as text/plain (nosniff), or 400 for an empty or
// oversized one; it queues nothing and acts on no subscription.
func FuzzGraphValidationToken(f *testing.F) {
	for _, s := range []string{"abc def", "Validation: Testing client application reachability for subscription Request-Id: 0b1c", "",
		"<script>alert(1)</script>", strings.Repeat("x", maxValidationToken), strings.Repeat("x", maxValidationToken+1), "%zz", "a&b=c"} {
		f.Add(s, "")
	}
	f.Add("tok", "validationToken=other&x=%ff")
	f.Fuzz(func(t *testing.T, token, extra string) {
		q := &fakeQueue{}
		subs := newFakeSubs()
		h := GraphNotificationHandler(q, subs, func() string { return testClientState }, zap.NewNop())
		query := url.Values{"validationToken": {token}}.Encode()
		if extra != "" {
			query += "&" + extra
		}
		r := httptest.NewRequest(http.MethodPost, "/webhooks/graph", strings.NewReader(`{"value":[]}`))
		r.URL.RawQuery = query
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		// What Graph's request names: the first validationToken.
		want := r.URL.Query().Get("validationToken")
		switch {
		case want == "" || len(want) > maxValidationToken:
			if w.Code != http.StatusBadRequest {
				t.Fatalf("token %q: status %d, want 400", want, w.Code)
			}
		default:
			if w.Code != http.StatusOK || w.Body.String() != want {
				t.Fatalf("token %q: status %d, body %q", want, w.Code, w.Body.String())
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("headers %v", w.Header())
			}
		}
		if len(q.got()) != 0 || len(subs.calls) != 0 {
			t.Fatalf("a handshake queued %d events, %d subscription actions", len(q.got()), len(subs.calls))
		}
	})
}

// FuzzGraphNotificationItems builds one notification item from its fields
// and checks what the handler makes of it: a wrong clientState is ignored
// (202, nothing queued, no subscription action); with the right one, a
// change queues one event (the group's slice when resourceData.id or
// "Groups/{id}" names a group and the change is no delete, else a delta
// run), and lifecycle events do what Graph's documentation asks.
func FuzzGraphNotificationItems(f *testing.F) {
	const gid = "00000000-0000-0000-0002-000000000001"
	f.Add(testClientState, "updated", "Groups/"+gid, gid, "", "sub-1")
	f.Add(testClientState, "deleted", "Groups/"+gid, gid, "", "sub-1")
	f.Add(testClientState, "updated", "Groups/"+gid, "", "", "sub-1")
	f.Add(testClientState, "updated", "groups/a b", "", "", "sub-1")
	f.Add(testClientState, "", "", "", "reauthorizationRequired", "sub-2")
	f.Add(testClientState, "", "", "", "subscriptionRemoved", "sub-3")
	f.Add(testClientState, "", "", "", "missed", "sub-4")
	f.Add(testClientState, "", "", "", "somethingNew", "sub-5")
	f.Add("forged", "updated", "Groups/"+gid, gid, "", "sub-1")
	f.Add("forged", "", "", "", "subscriptionRemoved", "sub-1")
	f.Fuzz(func(t *testing.T, clientState, changeType, resource, dataID, lifecycle, subID string) {
		q := &fakeQueue{}
		subs := &fakeSubs{calls: make(chan string, 4)}
		h := GraphNotificationHandler(q, subs, func() string { return testClientState }, zap.NewNop(), WithGraphEnqueueBudget(10*time.Second))
		item := map[string]any{"subscriptionId": subID, "clientState": clientState, "changeType": changeType,
			"resource": resource, "tenantId": "t"}
		if dataID != "" {
			item["resourceData"] = map[string]any{"id": dataID, "@odata.type": "#Microsoft.Graph.Group"}
		}
		if lifecycle != "" {
			item["lifecycleEvent"] = lifecycle
		}
		body, err := json.Marshal(map[string]any{"value": []any{item}})
		if err != nil {
			t.Skip() // not valid UTF-8 text in JSON: not what Graph sends
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/webhooks/graph", strings.NewReader(string(body))))
		if w.Code != http.StatusAccepted {
			t.Fatalf("status %d for %s", w.Code, body)
		}
		events := q.got()
		// The item as Graph's JSON gives it back (invalid UTF-8 replaced).
		var back struct {
			Value []graphNotification `json:"value"`
		}
		if err := json.Unmarshal(body, &back); err != nil || len(back.Value) != 1 {
			t.Fatal(err)
		}
		n := back.Value[0]
		if n.ClientState != testClientState {
			// Refused before any lifecycle action is dispatched.
			if len(events) != 0 || len(subs.calls) != 0 {
				t.Fatalf("wrong clientState %q: %d events, %d actions", n.ClientState, len(events), len(subs.calls))
			}
			return
		}
		switch n.LifecycleEvent {
		case "":
			if len(events) != 1 {
				t.Fatalf("%d events for a change", len(events))
			}
			e := events[0]
			id := n.groupID()
			if id != "" && !strings.EqualFold(n.ChangeType, "deleted") {
				if e.Kind != EventSlice || len(e.Slice.Groups) != 1 || e.Slice.Groups[0] != id || len(e.Slice.Users) != 0 {
					t.Fatalf("a change of group %q queued %+v", id, e)
				}
			} else if e.Kind != EventDelta {
				t.Fatalf("a change without a readable group (%q, %q) queued %+v", n.Resource, n.ChangeType, e)
			}
			if id != "" && (strings.ContainsAny(id, "/#: \t\r\n") || len(id) > 128) {
				t.Fatalf("group id %q accepted", id)
			}
		case "reauthorizationRequired":
			if len(events) != 0 {
				t.Fatalf("reauthorizationRequired queued %+v", events)
			}
			if got := waitCall(subs); got != "reauthorize "+n.SubscriptionID {
				t.Fatalf("reauthorizationRequired: action %q", got)
			}
		case "subscriptionRemoved":
			if len(events) != 1 || events[0].Kind != EventDelta {
				t.Fatalf("subscriptionRemoved queued %+v", events)
			}
			if got := waitCall(subs); got != "recreate "+n.SubscriptionID {
				t.Fatalf("subscriptionRemoved: action %q", got)
			}
		case "missed":
			if len(events) != 1 || events[0].Kind != EventDelta {
				t.Fatalf("missed queued %+v", events)
			}
		default:
			if len(events) != 0 || len(subs.calls) != 0 {
				t.Fatalf("unknown lifecycle event %q: %d events, %d actions", n.LifecycleEvent, len(events), len(subs.calls))
			}
		}
	})
}

func waitCall(s *fakeSubs) string {
	select {
	case c := <-s.calls:
		return c
	case <-time.After(10 * time.Second):
		return "(none)"
	}
}

// FuzzBearer: the event endpoints' token check accepts exactly
// "Bearer <token>" (the scheme in any case, spaces around the token), and
// nothing when no token is set.
func FuzzBearer(f *testing.F) {
	for _, s := range [][2]string{{"Bearer abc", "abc"}, {"bearer  abc ", "abc"}, {"Basic abc", "abc"}, {"Bearer", "abc"},
		{"Bearer ", ""}, {"Bearerabc", "abc"}, {"Bearer abc\x00", "abc"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, token string) {
		r := httptest.NewRequest(http.MethodPost, "/sync/user/a", nil)
		r.Header["Authorization"] = []string{header}
		ok := bearer(r, token)
		// Stated apart from bearer's own steps: "Bearer " in any case,
		// then the token with spaces around it, and never an empty token.
		const prefix = "Bearer "
		want := token != "" && len(header) >= len(prefix) && strings.EqualFold(header[:len(prefix)], prefix) &&
			strings.TrimSpace(header[len(prefix):]) == token
		if ok != want {
			t.Fatalf("bearer(%q, %q) = %v", header, token, ok)
		}
	})
}

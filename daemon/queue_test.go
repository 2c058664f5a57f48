package daemon

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

func gauge(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	return m.Total(name)
}

func users(u ...string) Event {
	return Event{Kind: EventSlice, Slice: gsync.Slice{Users: u}, Origin: OriginGeneric, Received: time.Now()}
}

func TestQueueCoalescesAndMerges(t *testing.T) {
	m := metrics.New()
	q := NewQueue(10, m)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(e Event, d time.Duration) Event { e.Received = t0.Add(d); return e }

	for _, e := range []Event{
		at(users("alice"), 0),
		at(users("bob", "alice"), time.Second), // alice waits already; bob is new
		at(users("alice"), 2*time.Second),      // nothing new: coalesced
		at(Event{Kind: EventSlice, Slice: gsync.Slice{Groups: []string{"eng"}}, Origin: OriginAuthentik}, 3*time.Second),
		at(Event{Kind: EventSlice, Slice: gsync.Slice{Users: []string{"eng"}}}, 4*time.Second), // a user, not the group
		at(Event{Kind: EventDelta, Origin: OriginGraph}, 5*time.Second),
		at(Event{Kind: EventDelta, Origin: OriginGraph}, 6*time.Second), // a delta waits already
	} {
		if err := q.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != 5 || gauge(t, m, "groupsync_event_queue_depth") != 5 {
		t.Fatalf("depth %d", q.Len())
	}
	if got := gauge(t, m, "groupsync_events_coalesced_total"); got != 2 {
		t.Fatalf("coalesced %v, want 2", got)
	}
	if got := gauge(t, m, "groupsync_events_received_total"); got != 7 {
		t.Fatalf("received %v", got)
	}
	b := q.take()
	if !slices.Equal(b.slice.Users, []string{"alice", "bob", "eng"}) || !slices.Equal(b.slice.Groups, []string{"eng"}) || !b.delta {
		t.Fatalf("batch %+v", b)
	}
	// Each item keeps its first request's time: the lag is the longest wait.
	want := []time.Duration{0, time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second}
	for i, r := range b.received {
		if r.Sub(t0) != want[i] {
			t.Fatalf("received %v", b.received)
		}
	}
	if q.take() != nil || q.Len() != 0 || gauge(t, m, "groupsync_event_queue_depth") != 0 {
		t.Fatal("take did not empty the queue")
	}
	// A new ticket for what comes next.
	t1, _, _ := q.enqueue(users("carol"))
	if t1 == b.ticket {
		t.Fatal("the next batch shares the taken batch's ticket")
	}
}

func TestQueueIsBounded(t *testing.T) {
	m := metrics.New()
	q := NewQueue(2, m)
	if err := q.Enqueue(users("a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(users("c")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a third user in a queue of 2: %v", err)
	}
	// All or nothing: "a" waits, "d" does not fit, so neither is added.
	if err := q.Enqueue(users("a", "d")); !errors.Is(err, ErrQueueFull) || q.Len() != 2 {
		t.Fatalf("a partly new event: %v, depth %d", err, q.Len())
	}
	// What already waits still coalesces: it costs nothing.
	if err := q.Enqueue(users("b")); err != nil {
		t.Fatalf("a duplicate in a full queue: %v", err)
	}
	if err := q.Enqueue(Event{Kind: EventDelta}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a delta in a full queue: %v", err)
	}
	if gauge(t, m, "groupsync_events_dropped_total") != 3 || gauge(t, m, "groupsync_events_coalesced_total") != 1 {
		t.Fatal("dropped or coalesced not counted")
	}
	q.SetSize(3)
	if err := q.Enqueue(users("c")); err != nil {
		t.Fatalf("after a larger queue_size: %v", err)
	}
	for _, e := range []Event{{Kind: EventSlice}, {Kind: "bogus", Slice: gsync.Slice{Users: []string{"x"}}}} {
		if err := q.Enqueue(e); err == nil || errors.Is(err, ErrQueueFull) {
			t.Fatalf("event %+v: %v", e, err)
		}
	}
}

func TestParseSyncPath(t *testing.T) {
	for path, want := range map[string]gsync.Slice{
		"/sync/user/alice":               {Users: []string{"alice"}},
		"/sync/user/alice%40example.com": {Users: []string{"alice@example.com"}},
		"/sync/user/CN=a%2COU=x":         {Users: []string{"CN=a,OU=x"}},
		"/sync/group/Sales%20Team":       {Groups: []string{"Sales Team"}},
		"/sync/group/a%2Fb":              {Groups: []string{"a/b"}},
	} {
		got, err := parseSyncPath(path)
		if err != nil || !slices.Equal(got.Users, want.Users) || !slices.Equal(got.Groups, want.Groups) {
			t.Errorf("%s: %+v %v", path, got, err)
		}
	}
	for path, says := range map[string]string{
		"/sync/user/":      "the user is empty",
		"/sync/user":       "expected /sync/user/{key}",
		"/sync/users/a":    "expected /sync/user/{key}",
		"/sync/user/a/b":   "expected /sync/user/{key}",
		"/sync/user/%zz":   "not validly escaped",
		"/sync/user/a%00b": "control character",
		"/sync/group/%20":  "the group is empty",
		"/sync/user/%ff":   "not UTF-8",
		"/sync/group/" + strings.Repeat("x", 513): "longer than 512",
	} {
		if _, err := parseSyncPath(path); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: want ...%s..., got %v", path, says, err)
		}
	}
}

func TestParseAuthentik(t *testing.T) {
	for _, tc := range []struct {
		body, key string
		users     []string
		groups    []string
	}{
		// The notification transport's default body: the event's user.
		{`{"body": "login: {...}", "severity": "notice", "user_email": "admin@x", "user_username": "admin",
		   "event_user_email": "alice@x", "event_user_username": "alice"}`, "username", []string{"alice"}, nil},
		// No event user: the recipient.
		{`{"body": "b", "severity": "alert", "user_email": "bob@x", "user_username": "bob"}`, "username", []string{"bob"}, nil},
		{`{"body": "b", "event_user_email": "alice@x", "event_user_username": "alice"}`, "mail", []string{"alice@x"}, nil},
		// A body mapping or an expression policy.
		{`{"username": "carol"}`, "username", []string{"carol"}, nil},
		{`{"username": "carol"}`, "upn", []string{"carol"}, nil},
		{`{"email": "carol@x", "username": "carol"}`, "mail", []string{"carol@x"}, nil},
		{`{"user": "dave"}`, "username", []string{"dave"}, nil},
		{`{"user": {"username": "dave", "email": "dave@x", "pk": 7}}`, "mail", []string{"dave@x"}, nil},
		{`{"group": "Sales Team"}`, "id", nil, []string{"Sales Team"}},
		{`{"group": "eng", "username": "erin"}`, "username", []string{"erin"}, []string{"eng"}},
		// The explicit name wins over the notification's fields.
		{`{"username": "frank", "event_user_username": "admin"}`, "username", []string{"frank"}, nil},
		{`{"username": null, "user_username": "gina"}`, "username", []string{"gina"}, nil},
	} {
		got, err := parseAuthentik([]byte(tc.body), tc.key)
		if err != nil || !slices.Equal(got.Users, tc.users) || !slices.Equal(got.Groups, tc.groups) {
			t.Errorf("%s (key %s): %+v %v", tc.body, tc.key, got, err)
		}
	}
	for _, tc := range []struct{ body, key, says string }{
		{``, "username", "not a JSON object"},
		{`[{"username": "a"}]`, "username", "not a JSON object"},
		{`"alice"`, "username", "not a JSON object"},
		{`null`, "username", "not a JSON object"},
		{`{"username": "a"} {"username": "b"}`, "username", "more than one JSON value"},
		{`{}`, "username", `expected a JSON object with "username"`},
		{`{"body": "x", "severity": "notice"}`, "username", "names no user or group"},
		{`{"username": 5}`, "username", `"username" is not a string`},
		{`{"user": [1]}`, "username", `"user" is neither`},
		{`{"group": {"name": "x"}}`, "username", `"group" is not a string`},
		{`{"username": "a\u0000b"}`, "username", "control character"},
		{`{"username": "  "}`, "username", "the user is empty"},
	} {
		_, err := parseAuthentik([]byte(tc.body), tc.key)
		var mk *errMappingKey
		if err == nil || errors.As(err, &mk) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: want a payload error ...%s..., got %v", tc.body, tc.says, err)
		}
	}
	for _, tc := range []struct{ body, key, says string }{
		{`{"username": "a"}`, "id", "mapping.user.key is id"},
		{`{"username": "a"}`, "", "mapping.user.key is id"},
		{`{"username": "a"}`, "attribute:employeeId", "POST /sync/user/{key} with the user's attribute:employeeId"},
		{`{"username": "a"}`, "mail", "mapping.user.key is mail"},
		{`{"email": "a@x"}`, "username", "gives an email but no username"},
	} {
		_, err := parseAuthentik([]byte(tc.body), tc.key)
		var mk *errMappingKey
		if !errors.As(err, &mk) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s (key %q): want a mapping error ...%s..., got %v", tc.body, tc.key, tc.says, err)
		}
	}
}

// The parsers take anything a caller sends: never a panic, and what they
// accept names valid keys only.
func FuzzAuthentikPayload(f *testing.F) {
	for _, s := range []string{`{"username": "a"}`, `{"user": {"email": "a@x"}}`, `{"group": "g", "event_user_username": "u"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, key := range []string{"username", "mail", "id"} {
			s, err := parseAuthentik(body, key)
			if err != nil {
				if !s.Empty() {
					t.Fatalf("an error with a slice: %+v", s)
				}
				continue
			}
			if s.Empty() || len(s.Users) > 1 || len(s.Groups) > 1 {
				t.Fatalf("accepted %q as %+v", body, s)
			}
			for _, k := range append(slices.Clone(s.Users), s.Groups...) {
				if checkKey("key", k) != nil {
					t.Fatalf("accepted the key %q", k)
				}
			}
		}
	})
}

func FuzzSyncPath(f *testing.F) {
	for _, s := range []string{"/sync/user/alice", "/sync/group/a%2Fb", "/sync/user/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		s, err := parseSyncPath(path)
		if err != nil {
			return
		}
		if len(s.Users)+len(s.Groups) != 1 {
			t.Fatalf("%q: %+v", path, s)
		}
		for _, k := range append(slices.Clone(s.Users), s.Groups...) {
			if checkKey("key", k) != nil {
				t.Fatalf("%q: accepted the key %q", path, k)
			}
		}
	})
}

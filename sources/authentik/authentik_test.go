package authentik

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/authentik/authentiktest"
	gsync "github.com/groupsync/groupsync/sync"
)

// fixture: Engineering ⊃ Platform ⊃ Infra ⊃ Engineering (authentik: each
// child names its parent), every user type, an inactive user.
func fixture() *authentiktest.Tenant {
	return &authentiktest.Tenant{
		Users: []authentiktest.User{
			{PK: 1, Username: "alice", Name: "Alice", Email: "alice@example.com", Attributes: map[string]any{"employeeId": "1001", "level": 3.0}},
			{PK: 2, Username: "bob", Email: "bob@example.com"},
			{PK: 3, Username: "carol", Email: "carol@example.com", Inactive: true},
			{PK: 4, Username: "dave@partner.example", Email: "dave@partner.example", Type: "external"},
			{PK: 5, Username: "ci-bot", Type: "service_account"},
			{PK: 6, Username: "erin", Email: "erin@example.com", Type: "internal_service_account"},
			{PK: 7, Username: "frank", Email: "frank@example.com"},
		},
		Groups: []authentiktest.Group{
			{Name: "Engineering", Users: []int{1}, Parents: []string{"Infra"}},
			{Name: "Platform", Users: []int{2, 5}, Parents: []string{"Engineering"}},
			{Name: "Infra", Users: []int{3}, Parents: []string{"Platform"}},
			{Name: "Sales", Users: []int{4, 6}},
			{Name: "authentik Admins", IsSuperuser: true, Users: []int{7}},
			{Name: "Empty"},
		},
	}
}

func cfgFor(srv *authentiktest.Server) config.Authentik {
	c := config.Default().Source.Authentik
	c.URL = srv.URL
	c.Token = config.Secret(srv.Token())
	c.PageSize = 2
	c.MaxRetryWait = config.Duration(10 * time.Second)
	return c
}

func newSource(t *testing.T, c config.Authentik) *Source {
	t.Helper()
	s, err := New(c, WithRetryMinWait(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func group(s *gsync.Snapshot, name string) *gsync.Group {
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i]
		}
	}
	return nil
}

func user(s *gsync.Snapshot, upn string) *gsync.User {
	for i := range s.Users {
		if s.Users[i].UPN == upn {
			return &s.Users[i]
		}
	}
	return nil
}

func TestSnapshotOfFixture(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "parents", true: "legacy parent"}[legacy], func(t *testing.T) {
			var opts []authentiktest.Option
			if legacy {
				opts = append(opts, authentiktest.WithLegacyParent())
			}
			srv := authentiktest.New(t, fixture(), opts...)
			src := newSource(t, cfgFor(srv))
			s, err := src.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			pk := authentiktest.GroupPK
			uid := authentiktest.UID
			if len(s.Groups) != 6 {
				t.Fatalf("%d groups", len(s.Groups))
			}
			// Children are subgroups of their parents.
			for parent, child := range map[string]string{"Engineering": "Platform", "Platform": "Infra", "Infra": "Engineering"} {
				if g := group(s, parent); g.ID != pk(parent) || !slices.Equal(g.Groups, []string{pk(child)}) {
					t.Errorf("%s: %+v", parent, g)
				}
			}
			if g := group(s, "Platform"); !slices.Equal(g.Users, []string{uid(2)}) {
				t.Errorf("Platform users: %v", g.Users)
			}
			if g := group(s, "Sales"); !slices.Equal(g.Users, []string{uid(4)}) {
				t.Errorf("Sales users: %v", g.Users)
			}
			if len(s.Users) != 5 {
				t.Errorf("%d users: %+v", len(s.Users), s.Users)
			}
			a := user(s, "alice")
			if a == nil || a.ID != uid(1) || a.Mail != "alice@example.com" || a.Disabled || a.Guest ||
				a.Attributes["employeeId"] != "1001" || a.Attributes["level"] != "3" || a.Attributes["pk"] != "1" ||
				a.Attributes["uid"] != uid(1) || a.Attributes["uuid"] != authentiktest.UserUUID(1) || a.Attributes["type"] != "internal" {
				t.Errorf("alice: %+v", a)
			}
			if c := user(s, "carol"); c == nil || !c.Disabled {
				t.Errorf("carol: %+v", c)
			}
			if d := user(s, "dave@partner.example"); d == nil || !d.Guest {
				t.Errorf("dave: %+v", d)
			}
			var skips []string
			for _, sk := range s.Skipped {
				skips = append(skips, sk.Name+": "+sk.Reason+": "+sk.Detail)
			}
			slices.Sort(skips)
			want := []string{
				"Platform: not_user_or_group: members that are neither users nor groups: 1 service account(s) (set source.authentik.include_service_accounts to sync them)",
				"Sales: not_user_or_group: members that are neither users nor groups: 1 service account(s) (set source.authentik.include_service_accounts to sync them)",
			}
			if !slices.Equal(skips, want) {
				t.Errorf("skips %v", skips)
			}
			if st := srv.Stats(); st.GroupPages != 3 || st.UserPages != 4 {
				t.Errorf("pages: %+v", st)
			}

			m, _ := gsync.NewMapper(config.Default().Mapping)
			d, err := m.Map(s)
			if err != nil {
				t.Fatal(err)
			}
			var eng []string
			for _, tu := range d.Members.Tuples() {
				if tu.Object == "group:Engineering" {
					eng = append(eng, tu.User)
				}
			}
			slices.Sort(eng)
			wantEng := []string{"user:" + uid(1), "user:" + uid(2)} // carol is inactive
			slices.Sort(wantEng)
			if !slices.Equal(eng, wantEng) {
				t.Errorf("Engineering: %v want %v", eng, wantEng)
			}
		})
	}
}

func TestServiceAccountsOnRequest(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	c := cfgFor(srv)
	c.IncludeServiceAccounts = true
	s, err := newSource(t, c).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Skipped) != 0 || len(group(s, "Platform").Users) != 2 || user(s, "ci-bot") == nil {
		t.Fatalf("%+v", s)
	}
}

func TestRetriesThrottlingErrorsAndDrops(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	srv.FailNextWith(2, authentiktest.Fault{Kind: authentiktest.FaultStatus, Status: http.StatusServiceUnavailable, RetryAfter: "0.01"})
	srv.FailNextWith(1, authentiktest.Fault{Kind: authentiktest.FaultStatus, Status: http.StatusTooManyRequests, RetryAfter: "0.01"})
	srv.FailNextWith(1, authentiktest.Fault{Kind: authentiktest.FaultStatus, Status: http.StatusBadGateway})
	srv.FailNextWith(1, authentiktest.Fault{Kind: authentiktest.FaultTruncate})
	var n atomic.Int64
	srv.SetFaultFunc(func(r *http.Request) *authentiktest.Fault {
		if strings.Contains(r.URL.Path, "/core/users/") && n.Add(1) <= 3 {
			return authentiktest.DropFault()
		}
		return nil
	})
	src := newSource(t, cfgFor(srv))
	s, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) != 6 || src.Stats().Retries.Load() < 6 || src.Stats().Throttled.Load() != 1 {
		t.Fatalf("groups %d retries %d throttled %d", len(s.Groups), src.Stats().Retries.Load(), src.Stats().Throttled.Load())
	}
}

func TestGivesUpWithTheLastAnswer(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	srv.FailNext(100, http.StatusBadGateway)
	c := cfgFor(srv)
	c.MaxRetries = 2
	_, err := newSource(t, c).Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "authentik: list core/groups: authentik GET core/groups/: HTTP 502: 502 Bad Gateway (gave up after 3 attempts") {
		t.Fatalf("%v", err)
	}
	dropping := authentiktest.New(t, fixture(), authentiktest.WithFaults(func(*http.Request) *authentiktest.Fault { return authentiktest.DropFault() }))
	c = cfgFor(dropping)
	c.MaxRetries = 2
	_, err = newSource(t, c).Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("drops: %v", err)
	}
}

func TestErrorsSayWhatToChange(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>login</html>"))
	}))
	t.Cleanup(html.Close)
	cases := []struct {
		name   string
		change func(*config.Authentik)
		want   []string
	}{
		{"token", func(c *config.Authentik) { c.Token = "wrong-token-value" }, []string{"HTTP 403: Token invalid/expired", "check source.authentik.token"}},
		{"path", func(c *config.Authentik) { c.URL += "/authentik" }, []string{"HTTP 404", "base URL (without /api/v3)"}},
		{"not authentik", func(c *config.Authentik) { c.URL = html.URL }, []string{"answered text/html, not JSON", "not a login page"}},
	}
	for _, tc := range cases {
		c := cfgFor(srv)
		tc.change(&c)
		_, err := newSource(t, c).Snapshot(context.Background())
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: want %q in %v", tc.name, w, err)
			}
		}
		if err != nil && (strings.Contains(err.Error(), "wrong-token-value") || strings.Contains(err.Error(), srv.Token())) {
			t.Errorf("%s: the token leaked: %v", tc.name, err)
		}
	}
}

func TestChangeDuringTheReadIsReadAgain(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	var once atomic.Bool
	srv.SetFaultFunc(func(r *http.Request) *authentiktest.Fault {
		if r.URL.Path == "/api/v3/core/groups/" && r.URL.Query().Get("page") == "2" && once.CompareAndSwap(false, true) {
			// A new group sorts first and shifts every page by one.
			if err := srv.Mutate(func(t *authentiktest.Tenant) {
				t.Groups = append(t.Groups, authentiktest.Group{Name: "Aardvarks", Users: []int{7}})
			}); err != nil {
				panic(err)
			}
		}
		return nil
	})
	src := newSource(t, cfgFor(srv))
	s, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if src.Stats().Rereads.Load() != 1 || group(s, "Aardvarks") == nil || len(s.Groups) != 7 {
		t.Fatalf("rereads %d, groups %d", src.Stats().Rereads.Load(), len(s.Groups))
	}
}

func TestUsersTheTokenCannotSeeFailTheRead(t *testing.T) {
	srv := authentiktest.New(t, fixture(), authentiktest.WithHiddenUsers(func(pk int) bool { return pk == 2 }))
	src := newSource(t, cfgFor(srv))
	_, err := src.Snapshot(context.Background())
	var changed *errChanged
	if err == nil || errors.As(err, &changed) || !strings.Contains(err.Error(), `group "Platform" lists user pk 2, which the user list lacks`) ||
		!strings.Contains(err.Error(), "global permissions to view groups and users") || src.Stats().Rereads.Load() != maxReads-1 {
		t.Fatalf("%v", err)
	}
}

func TestCheck(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	res := newSource(t, cfgFor(srv)).Check(context.Background())
	if len(res) != 3 || res[0].Err != nil || res[0].Warning != "" || res[1].Note != "6 groups" || res[2].Note != "7 users" {
		t.Fatalf("%+v", res)
	}
	limited := authentiktest.New(t, fixture(), authentiktest.WithTokenUser(false))
	if res := newSource(t, cfgFor(limited)).Check(context.Background()); res[0].Warning == "" {
		t.Fatalf("%+v", res)
	}
	scoped := authentiktest.New(t, fixture(), authentiktest.WithTokenUser(false, "authentik_core.view_group", "authentik_core.view_user"))
	if res := newSource(t, cfgFor(scoped)).Check(context.Background()); res[0].Warning != "" || res[0].Err != nil {
		t.Fatalf("%+v", res)
	}
	c := cfgFor(srv)
	c.Token = "nope"
	if res := newSource(t, c).Check(context.Background()); len(res) != 1 || res[0].Err == nil {
		t.Fatalf("%+v", res)
	}
}

// countingTransport counts the requests it passes on.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestLastReadAndTransportWrapper(t *testing.T) {
	srv := authentiktest.New(t, fixture())
	c := cfgFor(srv)
	c.InsecureSkipTLSVerify = true
	var built *http.Transport
	counter := &countingTransport{}
	src, err := New(c, WithRetryMinWait(time.Millisecond), WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
		built, _ = rt.(*http.Transport)
		counter.base = rt
		return counter
	}))
	if err != nil {
		t.Fatal(err)
	}
	if built == nil || built.TLSClientConfig == nil || !built.TLSClientConfig.InsecureSkipVerify || built.TLSClientConfig.MinVersion == 0 {
		t.Fatalf("the wrapper got %#v, want the source's transport with its TLS settings", built)
	}
	srv.FailNextWith(1, authentiktest.Fault{Kind: authentiktest.FaultStatus, Status: http.StatusTooManyRequests, RetryAfter: "0.02"})
	if _, err := src.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 3 pages of groups and 4 of users (page size 2), and the retry.
	rd := src.LastRead()
	if rd.Mode != "full" || rd.Requests != 8 || counter.n.Load() != 8 || rd.Retries != 1 || rd.Throttled != 1 || rd.Waited < 20*time.Millisecond {
		t.Fatalf("first read %+v, transport saw %d", rd, counter.n.Load())
	}
	if _, err := src.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rd := src.LastRead(); rd.Mode != "full" || rd.Requests != 7 || rd.Retries != 0 || rd.Throttled != 0 || rd.Waited != 0 {
		t.Fatalf("second read %+v", rd)
	}
	var _ gsync.ReadDescriber = src
}

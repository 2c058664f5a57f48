package graphtest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFailNext(t *testing.T) {
	s := New(t, Generate(GenOptions{Seed: 1, Users: 5, Groups: 3}))
	s.FailNext(2, http.StatusServiceUnavailable)
	for range 2 {
		a := get(t, s, "/v1.0/groups")
		if code := a.errorCode(t, 503); code != "serviceNotAvailable" || a.header.Get("Retry-After") != "1" {
			t.Errorf("%s, Retry-After %q", code, a.header.Get("Retry-After"))
		}
	}
	if a := get(t, s, "/v1.0/groups"); a.status != 200 {
		t.Errorf("third request: %d", a.status)
	}
	for status, code := range map[int]string{429: "TooManyRequests", 500: "generalException", 504: "UnknownError"} {
		s.FailNext(1, status)
		a := get(t, s, "/v1.0/users")
		if got := a.errorCode(t, status); got != code {
			t.Errorf("%d: %s", status, got)
		}
		if ra := a.header.Get("Retry-After"); (status == 429) != (ra == "1") {
			t.Errorf("%d: Retry-After %q", status, ra)
		}
	}
	s.FailNextWith(1, Fault{Status: 429, RetryAfter: "Wed, 21 Oct 2015 07:28:00 GMT", Code: "Custom", Message: "custom"})
	if a := get(t, s, "/v1.0/groups"); a.header.Get("Retry-After") != "Wed, 21 Oct 2015 07:28:00 GMT" || a.errorCode(t, 429) != "Custom" {
		t.Errorf("custom fault: %v %s", a.header, a.raw)
	}
	if st := s.Stats(); st.Faults != 6 || st.Throttled != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultDrop(t *testing.T) {
	s := New(t, Generate(GenOptions{Seed: 1, Users: 5, Groups: 3}))
	// A fresh connection closed without an answer is an error.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	s.FailNextWith(1, *DropFault())
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1.0/groups", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	if resp, err := fresh.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request answered %d", resp.StatusCode)
	}
	// On a reused keep-alive connection, net/http resends a GET that got no
	// answer at all: the drop is invisible, but counted twice.
	c := s.Client()
	get(t, s, "/v1.0/groups") // opens the connection
	s.ResetStats()
	s.FailNextWith(1, *DropFault())
	req, _ = http.NewRequest(http.MethodGet, s.URL+"/v1.0/groups", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	if a := send(t, c, req); a.status != 200 {
		t.Errorf("retried GET: %d", a.status)
	}
	if st := s.Stats(); st.GroupPages != 2 || st.Faults != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaultTruncateAndMalformed(t *testing.T) {
	tn := Generate(GenOptions{Seed: 1, Users: 50, Groups: 3})
	s := New(t, tn, WithFaults(func(r *http.Request) *Fault {
		switch {
		case EndpointOf(r) != EndpointMembers:
			return nil
		case strings.Contains(r.URL.RawQuery, "truncate"):
			return TruncateFault()
		case strings.Contains(r.URL.RawQuery, "malformed"):
			return MalformedFault()
		}
		return nil
	}))
	members := s.URL + "/v1.0/groups/" + tn.Groups[0].ID + "/members"
	do := func(target string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := s.Client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	resp, _, err := do(members + "?x=truncate")
	if !errors.Is(err, io.ErrUnexpectedEOF) || resp.StatusCode != 200 {
		t.Errorf("truncated: %v", err)
	}
	resp, body, err := do(members + "?x=malformed")
	if err != nil || resp.StatusCode != 200 || json.Valid(body) || len(body) == 0 {
		t.Errorf("malformed: %v %d %q", err, resp.StatusCode, body)
	}
	if _, body, err := do(members); err != nil || !json.Valid(body) {
		t.Errorf("unfaulted: %v", err)
	}
	if _, body, err := do(s.URL + "/v1.0/groups?x=truncate"); err != nil || !json.Valid(body) {
		t.Errorf("the hook only hits members: %v", err)
	}
}

func TestLatency(t *testing.T) {
	s := New(t, Generate(GenOptions{Seed: 1, Users: 5, Groups: 3}), WithLatency(60*time.Millisecond))
	start := time.Now()
	get(t, s, "/v1.0/groups")
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("answered in %v", d)
	}
	s.SetLatency(0)
	start = time.Now()
	get(t, s, "/v1.0/groups")
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("answered in %v without latency", d)
	}
}

func TestThrottle(t *testing.T) {
	tn := Generate(GenOptions{Seed: 1, Users: 5, Groups: 3})
	s := New(t, tn, WithThrottling(10)) // 1 RU per second
	start := time.Unix(1_700_000_000, 0)
	s.setClock(func() time.Time { return start })
	members := "/v1.0/groups/" + tn.Groups[0].ID + "/members"
	for range 3 {
		if a := get(t, s, members); a.status != 200 || a.header.Get("x-ms-resource-unit") != "3" {
			t.Fatalf("%d, %s RU", a.status, a.header.Get("x-ms-resource-unit"))
		}
	}
	a := get(t, s, members)
	if code := a.errorCode(t, 429); code != "TooManyRequests" || a.header.Get("Retry-After") != "2" {
		t.Errorf("%s, Retry-After %q (1 RU left, 3 needed)", code, a.header.Get("Retry-After"))
	}
	if a := get(t, s, "/v1.0/groups"); a.status != 200 {
		t.Errorf("a 1-RU request fits: %d", a.status)
	}
	s.setClock(func() time.Time { return start.Add(3 * time.Second) })
	if a := get(t, s, members+"?$select=id"); a.status != 200 || a.header.Get("x-ms-resource-unit") != "2" {
		t.Errorf("after 3 s: %d, %s RU", a.status, a.header.Get("x-ms-resource-unit"))
	}
	if st := s.Stats(); st.Throttled != 1 || st.ResourceUnits != 3*3+1+2 || st.MemberPages != 5 {
		t.Errorf("stats %+v", st)
	}
	s.SetThrottling(0)
	for range 10 {
		if a := get(t, s, members); a.status != 200 {
			t.Fatalf("unthrottled: %d", a.status)
		}
	}
}

func TestStatsReset(t *testing.T) {
	s := New(t, Generate(GenOptions{Seed: 1, Users: 5, Groups: 3}))
	get(t, s, "/v1.0/groups")
	get(t, s, "/v1.0/users")
	get(t, s, "/v1.0/nothing")
	if st := s.Stats(); st.Requests != 3 || st.GroupPages != 1 || st.UserPages != 1 || st.Other != 1 || st.ResourceUnits != 3 {
		t.Errorf("stats %+v", st)
	}
	s.ResetStats()
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("after reset %+v", st)
	}
}

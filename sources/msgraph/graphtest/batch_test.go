package graphtest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// item is a batch request item as the SDK writes it.
type item struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      any               `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

type itemAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    map[string]any    `json:"body"`
}

// postBatch sends the items gzip-compressed, as the SDK does.
func postBatch(t *testing.T, s *Server, items []item) (int, []itemAnswer, answer) {
	t.Helper()
	for i := range items {
		if items[i].Method == "" {
			items[i].Method = "GET"
		}
		if items[i].DependsOn == nil {
			items[i].DependsOn = []string{}
		}
	}
	doc, err := json.Marshal(map[string]any{"requests": items})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(doc)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1.0/$batch", &buf)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	a := send(t, s.Client(), req)
	if a.status != http.StatusOK {
		return a.status, nil, a
	}
	var out struct{ Responses []itemAnswer }
	if err := json.Unmarshal(a.raw, &out); err != nil {
		t.Fatal(err)
	}
	return a.status, out.Responses, a
}

func TestBatch(t *testing.T) {
	tn := Generate(GenOptions{Seed: 11, Users: 1200, Groups: 12, MaxDepth: 1})
	s := New(t, tn)
	all := tn.Groups[0]
	missing := "00000000-1111-4222-8333-444444444444"
	status, answers, _ := postBatch(t, s, []item{
		{ID: "1", URL: "/groups/" + all.ID + "/members?%24select=id&%24top=999", Headers: map[string]string{"consistencylevel": "eventual"}},
		{ID: "2", URL: "/groups/" + missing + "/transitiveMembers/graph.user"},
		{ID: "3", URL: "groups?$select=displayName&$top=5"},
		{ID: "4", URL: "/groups/" + missing, DependsOn: []string{"2"}},
	})
	if status != 200 || len(answers) != 4 {
		t.Fatalf("status %d, %d answers", status, len(answers))
	}
	if answers[0].ID != "4" || answers[3].ID != "1" {
		t.Errorf("answers not in reverse order: %s..%s", answers[0].ID, answers[3].ID)
	}
	byID := map[string]itemAnswer{}
	for _, a := range answers {
		byID[a.ID] = a
	}
	one := byID["1"]
	if one.Status != 200 || !strings.HasPrefix(one.Headers["Content-Type"], "application/json") || one.Headers["x-ms-resource-unit"] != "2" {
		t.Errorf("item 1: %d %v", one.Status, one.Headers)
	}
	if n := len(one.Body["value"].([]any)); n != 999 {
		t.Errorf("item 1 has %d members", n)
	}
	// The item's nextLink is absolute, keeps the item's query and works.
	next, _ := one.Body["@odata.nextLink"].(string)
	if !strings.HasPrefix(next, s.URL+"/v1.0/groups/"+all.ID+"/members?%24select=id&%24top=999&$skiptoken=") {
		t.Errorf("item nextLink %q", next)
	}
	if rest := get(t, s, next); len(rest.values()) != len(all.Members)-999 || rest.nextLink() != "" {
		t.Errorf("following the item's nextLink: %d members", len(rest.values()))
	}
	if two := byID["2"]; two.Status != 404 || two.Body["error"].(map[string]any)["code"] != "Request_ResourceNotFound" {
		t.Errorf("item 2: %+v", two)
	}
	if three := byID["3"]; three.Status != 200 || len(three.Body["value"].([]any)) != 5 {
		t.Errorf("item 3: %+v", three)
	}
	if four := byID["4"]; four.Status != http.StatusFailedDependency {
		t.Errorf("item 4 depends on a failed item: %d", four.Status)
	}
	st := s.Stats()
	if st.BatchPosts != 1 || st.BatchItems != 4 || st.MemberPages != 2 || st.TransitiveMemberPages != 1 || st.GroupPages != 1 || st.Requests != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestBatchLimits(t *testing.T) {
	s := New(t, Generate(GenOptions{Seed: 1, Users: 5, Groups: 3}))
	var items []item
	for i := range 21 {
		items = append(items, item{ID: fmt.Sprint(i), URL: "/groups"})
	}
	if status, _, a := postBatch(t, s, items); status != 400 || a.errorCode(t, 400) != "BadRequest" {
		t.Errorf("21 items: %d", status)
	}
	if status, answers, _ := postBatch(t, s, items[:20]); status != 200 || len(answers) != 20 {
		t.Errorf("20 items: %d, %d answers", status, len(answers))
	}
	if status, _, _ := postBatch(t, s, nil); status != 400 {
		t.Errorf("no items: %d", status)
	}
	if status, _, _ := postBatch(t, s, []item{{ID: "a", URL: "/groups"}, {ID: "a", URL: "/users"}}); status != 400 {
		t.Errorf("duplicate ids: %d", status)
	}
	// Uncompressed bodies work too; other encodings get 415, on which the
	// SDK resends uncompressed.
	for enc, want := range map[string]int{"": 200, "br": 415} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1.0/$batch", strings.NewReader(`{"requests":[{"id":"1","method":"GET","url":"/groups"}]}`))
		req.Header.Set("Authorization", "Bearer "+s.Token())
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		if a := send(t, s.Client(), req); a.status != want {
			t.Errorf("Content-Encoding %q: %d", enc, a.status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1.0/$batch", strings.NewReader(`{}`))
	if code := send(t, s.Client(), req).errorCode(t, 401); code != "InvalidAuthenticationToken" {
		t.Errorf("batch without token: %s", code)
	}
}

func TestBatchThrottledPerItem(t *testing.T) {
	tn := Generate(GenOptions{Seed: 1, Users: 50, Groups: 10})
	s := New(t, tn, WithThrottling(10)) // 1 RU per second
	start := time.Unix(1_700_000_000, 0)
	s.setClock(func() time.Time { return start })
	var items []item
	for i := range 5 {
		items = append(items, item{ID: fmt.Sprint(i), URL: "/groups/" + tn.Groups[i].ID + "/members?$select=id"}) // 2 RU each
	}
	_, answers, _ := postBatch(t, s, items)
	// 10 RU buy five 2-RU reads.
	for _, a := range answers {
		if a.Status != 200 {
			t.Fatalf("first batch, item %s: %d", a.ID, a.Status)
		}
	}
	_, answers, _ = postBatch(t, s, items)
	for _, a := range answers {
		if a.Status != 429 || a.Headers["Retry-After"] != "2" || a.Body["error"].(map[string]any)["code"] != "TooManyRequests" {
			t.Errorf("item %s of an empty budget: %d %v %v", a.ID, a.Status, a.Headers, a.Body)
		}
	}
	s.setClock(func() time.Time { return start.Add(4 * time.Second) })
	_, answers, _ = postBatch(t, s, items)
	ok := 0
	for _, a := range answers {
		if a.Status == 200 {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("after 4 s, %d items served, want 2", ok)
	}
	if st := s.Stats(); st.Throttled != 8 || st.ResourceUnits != 14 {
		t.Errorf("stats %+v", st)
	}
}

func TestBatchFaultsPerItem(t *testing.T) {
	tn := Generate(GenOptions{Seed: 1, Users: 50, Groups: 10})
	s := New(t, tn, WithFaults(func(r *http.Request) *Fault {
		if id, ok := BatchItemID(r); ok && id == "b" {
			return StatusFault(http.StatusServiceUnavailable)
		}
		return nil
	}))
	_, answers, _ := postBatch(t, s, []item{{ID: "a", URL: "/groups"}, {ID: "b", URL: "/groups"}})
	for _, a := range answers {
		switch {
		case a.ID == "a" && a.Status != 200:
			t.Errorf("item a: %d", a.Status)
		case a.ID == "b" && (a.Status != 503 || a.Headers["Retry-After"] != "1"):
			t.Errorf("item b: %d %v", a.Status, a.Headers)
		}
	}
	// FailNext counts items, not envelopes.
	s.SetFaultFunc(nil)
	s.FailNext(1, http.StatusGatewayTimeout)
	_, answers, _ = postBatch(t, s, []item{{ID: "a", URL: "/groups"}, {ID: "b", URL: "/groups"}})
	if answers[1].ID != "a" || answers[1].Status != 504 || answers[0].Status != 200 {
		t.Errorf("FailNext in a batch: %+v", answers)
	}
	// A malformed item spoils the whole answer: it is one HTTP response.
	s.FailNextWith(1, *MalformedFault())
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(map[string]any{"requests": []item{{ID: "a", Method: "GET", URL: "/groups"}, {ID: "b", Method: "GET", URL: "/users"}}})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1.0/$batch", &buf)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || json.Valid(body) {
		t.Errorf("malformed batch: %d, valid JSON %v", resp.StatusCode, json.Valid(body))
	}
	// A dropped item drops the whole answer.
	s.FailNextWith(1, *DropFault())
	buf.Reset()
	json.NewEncoder(&buf).Encode(map[string]any{"requests": []item{{ID: "a", Method: "GET", URL: "/groups"}}})
	req, _ = http.NewRequest(http.MethodPost, s.URL+"/v1.0/$batch", &buf)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	if resp, err := s.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped batch answered %d", resp.StatusCode)
	}
}

package graphtest

import (
	"io"
	"net/http"
	"sync"
	"testing"
)

// The scale later benchmarks use: 100k users, 10k groups, ~1M memberships.
var largeTenant = sync.OnceValue(func() *Tenant {
	return Generate(GenOptions{Seed: 1, Users: 100_000, Groups: 10_000, MaxDepth: 4, MembersPerGroup: 90,
		GuestFraction: 0.05, DisabledFraction: 0.03, Devices: 2000, DuplicateNames: 50, Cycles: 5})
})

func BenchmarkNewServerLarge(b *testing.B) {
	tn := largeTenant()
	for b.Loop() {
		NewServer(tn).Close()
	}
}

// fetch reads a URL and returns its body size, without decoding.
func fetch(b *testing.B, c *http.Client, token, target string) int64 {
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %d", target, resp.StatusCode)
	}
	return n
}

func BenchmarkLargeTenant(b *testing.B) {
	tn := largeTenant()
	s := NewServer(tn)
	defer s.Close()
	c := s.Client()
	all := tn.Groups[0] // every member user: ~95k

	b.Run("members-page-999", func(b *testing.B) {
		target := s.URL + "/v1.0/groups/" + all.ID + "/members?$select=id,userPrincipalName,accountEnabled&$top=999&$skiptoken=" + cursor{pos: 50_000, id: all.Members[50_000]}.encode()
		for b.Loop() {
			b.SetBytes(fetch(b, c, s.Token(), target))
		}
	})
	b.Run("transitive-page-999", func(b *testing.B) {
		target := s.URL + "/v1.0/groups/" + all.ID + "/transitiveMembers/graph.user?$select=id&$top=999"
		for b.Loop() {
			b.SetBytes(fetch(b, c, s.Token(), target))
		}
	})
	b.Run("groups-page-999-filtered", func(b *testing.B) {
		target := s.URL + "/v1.0/groups?$select=id,displayName&$top=999&$filter=securityEnabled%20eq%20true"
		for b.Loop() {
			b.SetBytes(fetch(b, c, s.Token(), target))
		}
	})
}

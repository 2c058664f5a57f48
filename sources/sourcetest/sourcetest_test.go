package sourcetest

import (
	"testing"
)

// TestExpectedByHand pins the oracle against counts worked out by hand.
func TestExpectedByHand(t *testing.T) {
	tn := Default()
	count := func(m Mapping, object string) int {
		n := 0
		for _, tu := range Expected(tn, m.Config) {
			if tu.Object == object {
				n++
			}
		}
		return n
	}
	ms := Mappings()
	flatten, userset, direct := ms[0], ms[1], ms[2]
	for _, c := range []struct {
		m      Mapping
		object string
		want   int
	}{
		{flatten, "group:Engineering", 7}, // u01-u04, u06-u08; u05 is disabled
		{flatten, "group:Infra", 7},       // the cycle brings Engineering's
		{flatten, "group:Leads", 12},      // Engineering's 7 and Sales' 5
		{flatten, "group:Design-Team", 4}, // u08-u10 and Frontend's u07
		{userset, "group:Engineering", 4}, // u01, u02, Platform#member, Frontend#member
		{userset, "group:Leads", 2},
		{direct, "group:design_team", 3},
		{direct, "group:everyone", 20}, // 23 minus three disabled
	} {
		if got := count(c.m, c.object); got != c.want {
			t.Errorf("%s %s: %d tuples, want %d", c.m.Name, c.object, got, c.want)
		}
	}
	for _, tu := range Expected(tn, direct.Config) {
		if tu.User == "user:person.05@mail.example" {
			t.Errorf("disabled user mapped: %v", tu)
		}
	}
}

package keys

import (
	"slices"
	"testing"
)

func TestSorted(t *testing.T) {
	got := Sorted(map[string]int{"b": 1, "c": 2, "a": 3})
	if !slices.Equal(got, []string{"a", "b", "c"}) || cap(got) != 3 {
		t.Fatalf("Sorted = %v (cap %d)", got, cap(got))
	}
	if got := Sorted(map[string]bool{}); len(got) != 0 {
		t.Fatalf("Sorted of an empty map = %v", got)
	}
}

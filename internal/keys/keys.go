// Package keys lists a map's keys in order.
package keys

import "slices"

// Sorted returns m's keys in ascending order, in a slice made at its size:
// slices.Sorted(maps.Keys(m)) grows its slice by appends, which for the
// 100k-entry maps of a large tenant's Graph state left megabytes of
// garbage at a run's peak.
func Sorted[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

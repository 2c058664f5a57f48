//go:build race

package sync_test

// raceEnabled shortens the slice property test under -race, which runs it
// several times slower.
const raceEnabled = true

//go:build race

package msgraph

// raceEnabled shortens the longest property test under -race, which runs
// it several times slower.
const raceEnabled = true

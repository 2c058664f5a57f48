//go:build !race

package msgraph

const raceEnabled = false

package config

import "time"

// Incremental makes runs read OpenFGA in proportion to what changed: the
// groups whose desired tuples changed, and those whose tuples someone
// changed since the last run (OpenFGA's changelog, ReadChanges), instead
// of every managed group. Owned mode only; the others read in full.
//
// What a run knows of OpenFGA (a digest of each managed group's tuples,
// the owned groups, the changelog positions) is kept in State after a
// successful apply. Whenever that knowledge is missing or doubtful (no
// state, a rejected position, another store or model, a run that wrote
// more than ReadBack changes) the run reads in full and says why.
type Incremental struct {
	Enabled bool `yaml:"enabled"`
	// FullEvery reads every managed group in full this often even when
	// the state is good (drift repair the changelog cannot miss). 0 reads
	// in full only when it must.
	FullEvery Duration `yaml:"full_every"`
	// ReadBack is how many changelog entries a run reads back after its
	// own writes, to tell them from another writer's in the meantime. A
	// run that wrote more leaves no state, and the next run reads in full.
	ReadBack int        `yaml:"read_back"`
	State    DeltaState `yaml:"state"`
}

// DefaultIncrementalStateName names the state when
// sync.incremental.state.name is not set.
const DefaultIncrementalStateName = "groupsync-openfga-state"

func defaultIncremental() Incremental {
	return Incremental{
		Enabled:   true,
		FullEvery: Duration(24 * time.Hour),
		ReadBack:  20000,
		State:     DeltaState{Type: "memory", Name: DefaultIncrementalStateName},
	}
}

func (i Incremental) validate(add func(field, format string, args ...any)) {
	const p = "sync.incremental."
	if i.FullEvery < 0 {
		add(p+"full_every", "must not be negative (0 reads in full only when it must), e.g. 24h")
	}
	if i.ReadBack < 0 {
		add(p+"read_back", "must be 0 or more (0 reads nothing back, so every run after one that wrote reads in full); got %d", i.ReadBack)
	}
	i.State.validate(p+"state.", i.Enabled, add)
}

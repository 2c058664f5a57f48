package config

import (
	"regexp"
	"time"
)

// MSGraphDelta makes the Entra ID source read incrementally, through Graph
// delta queries: a full read the first time (and on the cadence below, and
// whenever the state is missing, corrupt or expired), then only what changed
// since the delta links of the last run, applied to the state that run
// kept.
type MSGraphDelta struct {
	Enabled bool `yaml:"enabled"`
	// FullSyncEvery re-reads the whole tenant this often even when the
	// delta links are good (drift repair: it also rewrites tuples changed
	// directly in OpenFGA, as every run does). 0 reads in full only when
	// it must.
	FullSyncEvery Duration   `yaml:"full_sync_every"`
	State         DeltaState `yaml:"state"`
}

// DeltaState is where the incremental state (delta links and the tenant
// as last read, compressed) is kept between runs. It is written only after
// a successful apply.
type DeltaState struct {
	// Type: memory (the daemon: lost on restart, which then reads in full),
	// file (a volume), configmap or secret (a Kubernetes CronJob; through
	// the in-cluster API with the pod's service account).
	Type string `yaml:"type"`
	Path string `yaml:"path"` // file: where to keep it
	// Namespace of the ConfigMap or Secret; empty is the pod's own.
	Namespace string `yaml:"namespace"`
	// Name of the ConfigMap or Secret (a state too large for one object
	// also uses <name>-1, <name>-2 ...), or of the memory slot.
	Name string `yaml:"name"`
}

// DefaultDeltaStateName names the state when delta.state.name is not set.
const DefaultDeltaStateName = "groupsync-delta-state"

func defaultMSGraphDelta() MSGraphDelta {
	return MSGraphDelta{
		FullSyncEvery: Duration(24 * time.Hour),
		State:         DeltaState{Type: "memory", Name: DefaultDeltaStateName},
	}
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

func (d MSGraphDelta) validate(add func(field, format string, args ...any)) {
	const p = "source.msgraph.delta."
	if d.FullSyncEvery < 0 {
		add(p+"full_sync_every", "must not be negative (0 reads in full only when the state is missing or expired), e.g. 24h")
	}
	d.State.validate(p+"state.", d.Enabled, add)
}

// validate checks a state store's settings; p is its field path with the
// trailing dot, and enabled says whether the state will be used (a file
// path is required only then).
func (s DeltaState) validate(p string, enabled bool, add func(field, format string, args ...any)) {
	switch s.Type {
	case "memory":
		if s.Name == "" {
			add(p+"name", "is required: it names the state kept in memory")
		}
	case "file":
		if s.Path == "" && enabled {
			add(p+"path", "is required for state type file: where to keep the state, e.g. /var/lib/groupsync/state")
		}
	case "configmap", "secret":
		// Part objects are named <name>-<n>: leave room for the suffix.
		if len(s.Name) > 240 || !dnsSubdomain.MatchString(s.Name) {
			add(p+"name", "%q is not a valid Kubernetes object name (lower-case letters, digits, '-' and '.', at most 240 characters)", s.Name)
		}
		if s.Namespace != "" && (len(s.Namespace) > 63 || !dnsLabel.MatchString(s.Namespace)) {
			add(p+"namespace", "%q is not a valid Kubernetes namespace", s.Namespace)
		}
	default:
		add(p+"type", "%q is not one of memory, file, configmap, secret", s.Type)
	}
}

package config

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// Policy says which changes a run may make.
type Policy string

const (
	PolicySync    Policy = "sync"     // add and delete
	PolicyAddOnly Policy = "add-only" // add, never delete
)

// Policies lists every policy, in the order messages name them.
var Policies = []Policy{PolicySync, PolicyAddOnly}

// DefaultPolicy is the policy of a config that sets none, and of an
// engine whose settings set none.
const DefaultPolicy = PolicySync

// Valid reports whether p is one of Policies.
func (p Policy) Valid() bool { return slices.Contains(Policies, p) }

// OwnershipMode says how a run bounds the groups whose tuples it may delete.
type OwnershipMode string

const (
	// OwnershipOwned: only groups recorded as this instance's in the
	// ownership registry.
	OwnershipOwned OwnershipMode = "owned"
	// OwnershipAuthoritative: the whole managed scope of the store.
	OwnershipAuthoritative OwnershipMode = "authoritative"
	// OwnershipTargetDriven: only groups that already have tuples.
	OwnershipTargetDriven OwnershipMode = "target-driven"
)

// OwnershipModes lists every mode, in the order messages name them.
var OwnershipModes = []OwnershipMode{OwnershipOwned, OwnershipAuthoritative, OwnershipTargetDriven}

// DefaultOwnershipMode is the mode of a config that sets none, and of an
// engine whose settings set none: it deletes only in groups this instance
// recorded as its own.
const DefaultOwnershipMode = OwnershipOwned

// Valid reports whether m is one of OwnershipModes.
func (m OwnershipMode) Valid() bool { return slices.Contains(OwnershipModes, m) }

// oneOf lists values for a message: "a, b, c".
func oneOf[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// Sync is how a run may change OpenFGA: which tuples it owns, which changes
// it may make, and when it must stop.
type Sync struct {
	// Policy: "sync" adds and deletes; "add-only" never deletes.
	Policy    Policy    `yaml:"policy"`
	Ownership Ownership `yaml:"ownership"`
	Guards    Guards    `yaml:"guards"`
	Lease     Lease     `yaml:"lease"`
	// Incremental reads OpenFGA in proportion to what changed.
	Incremental Incremental `yaml:"incremental"`
}

// Ownership says which groups' tuples this instance may delete.
type Ownership struct {
	// Mode "owned" (default): groupsync records the groups it manages as
	// marker tuples in OpenFGA (type Type, relation "manages") and only
	// reads and deletes tuples of those groups. "authoritative": it owns the
	// whole managed scope (type, relation, user types) in the store.
	// "target-driven": it syncs only groups that already have tuples in
	// OpenFGA, and never touches others.
	Mode OwnershipMode `yaml:"mode"`
	// Instance names this groupsync, so that several (Entra, LDAP) can share
	// a store without touching each other's groups.
	Instance string `yaml:"instance"`
	// Type is the OpenFGA type of the ownership markers.
	Type string `yaml:"type"`
	// Store names an OpenFGA store of groupsync's own, on the same server,
	// for the ownership markers and the lease; created on the first apply
	// (or by "groupsync model write"). Empty: they live in openfga's store,
	// whose model must then have the ownership type. Set it for an
	// application that writes its own model (Incus), so that groupsync
	// needs nothing in that model and survives the application writing a
	// new one.
	Store string `yaml:"store"`
}

// Guards stop a run before it writes anything.
type Guards struct {
	// MaxDeletes stops a run that would delete more tuples; 0 disables.
	MaxDeletes int `yaml:"max_deletes"`
	// MaxDeletePercent stops a run that would delete more than this share
	// of the tuples it manages; 0 disables.
	MaxDeletePercent float64 `yaml:"max_delete_percent"`
	// MaxAdds stops a run that would add more tuples (a filter removed by
	// mistake); 0 disables, the default.
	MaxAdds int `yaml:"max_adds"`
	// MaxAddPercent stops a run that would add more than this share of the
	// tuples it already manages (once it adds more than 10); 0 disables,
	// the default. A first sync into an empty scope manages nothing yet and
	// is not stopped by it.
	MaxAddPercent float64 `yaml:"max_add_percent"`
	// AllowEmptySource lets a source with no groups, or no members at all,
	// empty the managed groups. Off: such a snapshot is refused.
	AllowEmptySource bool `yaml:"allow_empty_source"`
}

// PolicyOrDefault is s.Policy, or DefaultPolicy when it is unset.
func (s Sync) PolicyOrDefault() Policy {
	if s.Policy == "" {
		return DefaultPolicy
	}
	return s.Policy
}

// ModeOrDefault is o.Mode, or DefaultOwnershipMode when it is unset.
func (o Ownership) ModeOrDefault() OwnershipMode {
	if o.Mode == "" {
		return DefaultOwnershipMode
	}
	return o.Mode
}

// Lease keeps two runs of the same instance from writing at once.
type Lease struct {
	Enabled bool `yaml:"enabled"`
	// TTL is how long a lease holds without renewal; a run renews it every
	// TTL/3, so a crashed run blocks others for at most TTL.
	TTL Duration `yaml:"ttl"`
	// Wait is how long a run waits for a busy lease before it gives up
	// (exit code 4); 0 gives up at once.
	Wait Duration `yaml:"wait"`
}

func defaultSync() Sync {
	return Sync{
		Policy:      DefaultPolicy,
		Ownership:   Ownership{Mode: DefaultOwnershipMode, Instance: "groupsync", Type: "groupsync_instance"},
		Guards:      Guards{MaxDeletes: 1000, MaxDeletePercent: 30},
		Lease:       Lease{Enabled: true, TTL: Duration(10 * time.Minute)},
		Incremental: defaultIncremental(),
	}
}

var instanceName = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,64}$`)

func (s Sync) validate(add func(field, format string, args ...any)) {
	if !s.Policy.Valid() {
		add("sync.policy", "%q is not one of %s", s.Policy, oneOf(Policies))
	}
	if !s.Ownership.Mode.Valid() {
		add("sync.ownership.mode", "%q is not one of %s", s.Ownership.Mode, oneOf(OwnershipModes))
	}
	if !instanceName.MatchString(s.Ownership.Instance) {
		add("sync.ownership.instance", "%q must be 1-64 letters, digits, '.', '_' or '-'", s.Ownership.Instance)
	}
	if st := s.Ownership.Store; st != "" && !storeName.MatchString(st) {
		add("sync.ownership.store", "%q is not a valid OpenFGA store name (3-64 letters, digits, spaces and . - / ^ _ & @)", st)
	}
	if !typeName.MatchString(s.Ownership.Type) {
		add("sync.ownership.type", "%q is not a valid OpenFGA type name", s.Ownership.Type)
	}
	if s.Guards.MaxDeletes < 0 {
		add("sync.guards.max_deletes", "must be 0 (no limit) or more; got %d", s.Guards.MaxDeletes)
	}
	if s.Guards.MaxAdds < 0 {
		add("sync.guards.max_adds", "must be 0 (no limit) or more; got %d", s.Guards.MaxAdds)
	}
	if p := s.Guards.MaxAddPercent; p < 0 {
		add("sync.guards.max_add_percent", "must be 0 (no limit) or more (it may exceed 100: adding twice what exists is 200); got %v", p)
	}
	if p := s.Guards.MaxDeletePercent; p < 0 || p > 100 {
		add("sync.guards.max_delete_percent", "must be between 0 (no limit) and 100; got %v", p)
	}
	if s.Lease.Enabled && time.Duration(s.Lease.TTL) < 10*time.Second {
		add("sync.lease.ttl", "must be at least 10s; got %s", time.Duration(s.Lease.TTL))
	}
	if s.Lease.Wait < 0 {
		add("sync.lease.wait", "must not be negative")
	}
	s.Incremental.validate(add)
}

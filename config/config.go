// Package config is groupsync's configuration: one YAML file, environment
// variables for secrets and overrides, defaults in one place, and validation
// whose every error names the field at fault.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	Source  Source  `yaml:"source"`
	OpenFGA OpenFGA `yaml:"openfga"`
	Mapping Mapping `yaml:"mapping"`
	Sync    Sync    `yaml:"sync"`
	Daemon  Daemon  `yaml:"daemon"`
}

// Source selects and configures the identity provider to read.
type Source struct {
	Type      string     `yaml:"type"` // "file", "msgraph", "ldap" or "authentik"
	File      FileSource `yaml:"file"`
	MSGraph   MSGraph    `yaml:"msgraph"`
	LDAP      LDAP       `yaml:"ldap"`
	Authentik Authentik  `yaml:"authentik"`
}

// MSGraph reads Microsoft Entra ID through Microsoft Graph.
type MSGraph struct {
	TenantID string `yaml:"tenant_id"`
	ClientID string `yaml:"client_id"`
	// Auth: client_secret | client_certificate | workload_identity |
	// managed_identity | default (azidentity's chain) | token (a bearer
	// token obtained elsewhere, for debugging and air-gapped runs).
	Auth                 string `yaml:"auth"`
	ClientSecret         Secret `yaml:"client_secret"`
	ClientSecretFile     string `yaml:"client_secret_file"`
	CertificateFile      string `yaml:"certificate_file"` // PEM or PFX with the private key
	CertificatePassword  Secret `yaml:"certificate_password"`
	SendCertificateChain bool   `yaml:"send_certificate_chain"` // for subject name/issuer auth
	FederatedTokenFile   string `yaml:"federated_token_file"`   // workload identity; default $AZURE_FEDERATED_TOKEN_FILE
	Token                Secret `yaml:"token"`
	TokenFile            string `yaml:"token_file"`

	// Cloud: public | usgov | usgov-dod | china. Both the login authority
	// and the Graph host follow it.
	Cloud string `yaml:"cloud"`
	// GraphEndpoint overrides the Graph host (a proxy or private endpoint),
	// e.g. https://graph.proxy.example; plain http only for loopback.
	GraphEndpoint string `yaml:"graph_endpoint"`
	// AuthorityHost overrides the login authority, e.g. https://login.proxy.example/.
	AuthorityHost string `yaml:"authority_host"`

	Groups MSGraphGroups `yaml:"groups"`

	PageSize            int      `yaml:"page_size"`             // groups and members a page, 1..999
	MaxParallelRequests int      `yaml:"max_parallel_requests"` // $batch (or single) requests in flight
	MaxRetries          int      `yaml:"max_retries"`           // per request or batch item, on 429, 5xx and dropped connections
	MaxRetryWait        Duration `yaml:"max_retry_wait"`        // total wait per request before giving up
	RequestTimeout      Duration `yaml:"request_timeout"`

	// Delta reads incrementally with Graph delta queries.
	Delta MSGraphDelta `yaml:"delta"`
	// Subscriptions subscribes to Graph change notifications (daemon).
	Subscriptions MSGraphSubscriptions `yaml:"subscriptions"`
}

// MSGraphGroups chooses which Entra groups are read. The engine's
// mapping.filters apply on top.
type MSGraphGroups struct {
	// Filter is an OData $filter sent to Graph, e.g.
	// "startswith(displayName,'app-')". Advanced queries (ne, not, endswith)
	// are sent with ConsistencyLevel: eventual.
	Filter              string `yaml:"filter"`
	SecurityEnabledOnly bool   `yaml:"security_enabled_only"` // skip Microsoft 365 groups that are not security-enabled
	IncludeDistribution bool   `yaml:"include_distribution"`  // distribution lists (mail-enabled, not security) are skipped by default
	SkipDynamic         bool   `yaml:"skip_dynamic"`          // skip dynamic-membership groups
	SkipRoleAssignable  bool   `yaml:"skip_role_assignable"`  // skip groups that can hold Entra roles
}

// FileSource reads a tenant from a YAML or JSON file.
type FileSource struct {
	Path string `yaml:"path"`
}

// OpenFGA is the sink: where the tuples are written.
type OpenFGA struct {
	APIURL string `yaml:"api_url"`
	// StoreID or StoreName selects the store; StoreName must match exactly one store.
	StoreID   string `yaml:"store_id"`
	StoreName string `yaml:"store_name"`
	// AuthorizationModelID pins the model; empty means the store's latest,
	// resolved once at the start of each run.
	AuthorizationModelID string `yaml:"authorization_model_id"`
	Auth                 Auth   `yaml:"auth"`

	MaxTuplesPerWrite int      `yaml:"max_tuples_per_write"` // per request; the server's limit is 100 by default
	MaxParallelWrites int      `yaml:"max_parallel_writes"`  // write requests in flight
	MaxParallelReads  int      `yaml:"max_parallel_reads"`   // read requests in flight
	ReadPageSize      int      `yaml:"read_page_size"`       // 1..100
	MaxRetries        int      `yaml:"max_retries"`          // per request, on 429, 5xx and network errors
	RetryMinWait      Duration `yaml:"retry_min_wait"`       // first backoff; doubles with jitter, Retry-After wins
	RequestTimeout    Duration `yaml:"request_timeout"`      // per HTTP request
}

// Auth is how groupsync authenticates to OpenFGA.
type Auth struct {
	Method string `yaml:"method"` // none | api_token | client_credentials

	APIToken     Secret `yaml:"api_token"`
	APITokenFile string `yaml:"api_token_file"`

	ClientID         string `yaml:"client_id"`
	ClientSecret     Secret `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	TokenIssuer      string `yaml:"token_issuer"`
	Audience         string `yaml:"audience"`
	Scopes           string `yaml:"scopes"`
}

// Mapping turns a snapshot into tuples.
type Mapping struct {
	ObjectType string       `yaml:"object_type"` // OpenFGA type of a group, default "group"
	Relation   string       `yaml:"relation"`    // default "member"
	User       UserMapping  `yaml:"user"`
	Group      GroupMapping `yaml:"group"`
	// Nesting: "flatten" writes every transitive user on each group;
	// "userset" writes group:child#member on the parent; "direct" ignores subgroups.
	Nesting string  `yaml:"nesting"`
	Filters Filters `yaml:"filters"`
	// Grants write tuples beyond membership (config/grants.go).
	Grants []GrantRule `yaml:"grants"`
}

// UserMapping says how a user becomes an OpenFGA user.
type UserMapping struct {
	Type string `yaml:"type"` // default "user"
	// Key: "id" (stable, the default and OpenFGA's advice), "username"
	// (the login name: Entra's userPrincipalName, LDAP's upn_attribute —
	// uid on OpenLDAP, userPrincipalName on AD — authentik's username),
	// "upn" (the same, by Entra's name for it), "mail", or
	// "attribute:<name>" for any attribute the source provides.
	Key          string `yaml:"key"`
	Lowercase    bool   `yaml:"lowercase"`
	SkipDisabled bool   `yaml:"skip_disabled"` // default true
	SkipGuests   bool   `yaml:"skip_guests"`
	// HoldWithoutGroups keeps the tuples of a user whom the source lists
	// in no group at all: their deletes are withheld (reported), as
	// applications that sync at login leave a user's groups alone when the
	// token names none. Off: such a user is removed from every group.
	// It needs a source that lists users who are in no group (file,
	// authentik); the Graph and LDAP sources list only the members of the
	// groups they read, so to them such a user is gone, not groupless.
	HoldWithoutGroups bool `yaml:"hold_without_groups"`
}

// GroupMapping says how a group becomes an OpenFGA object id.
type GroupMapping struct {
	Key       string `yaml:"key"` // "name" (default) or "id"
	Lowercase bool   `yaml:"lowercase"`
	// ReplaceWhitespace, when set, replaces each run of whitespace in a name,
	// e.g. "-" turns "Sales Team" into "Sales-Team". Empty leaves names alone
	// (a name with whitespace is then reported and skipped).
	ReplaceWhitespace string `yaml:"replace_whitespace"`
}

// Filters choose which groups are managed. A group is managed when it
// matches an include rule (or there are none) and no exclude rule.
type Filters struct {
	Include []Match `yaml:"include"`
	Exclude []Match `yaml:"exclude"`
	// DefaultExcludes adds DefaultExcludeNames (built-in directory groups)
	// to Exclude. Default true.
	DefaultExcludes bool `yaml:"default_excludes"`
}

// Match is one filter rule; exactly one field is set. Rules match the
// group's source name (display name) or, for ID, its stable id.
type Match struct {
	Name  string `yaml:"name,omitempty"`  // exact display name
	Glob  string `yaml:"glob,omitempty"`  // path.Match pattern on the display name
	Regex string `yaml:"regex,omitempty"` // RE2 on the display name, unanchored
	ID    string `yaml:"id,omitempty"`    // exact stable id
}

// DefaultExcludeNames are built-in groups of Active Directory and Entra ID
// that hold machines or everyone, or only exist for the directory itself.
// Turn them off with mapping.filters.default_excludes: false.
var DefaultExcludeNames = []string{
	"Domain Users", "Domain Computers", "Domain Controllers", "Domain Guests",
	"Read-only Domain Controllers", "Enterprise Read-only Domain Controllers",
	"Cloneable Domain Controllers", "Cert Publishers", "RAS and IAS Servers",
	"Allowed RODC Password Replication Group", "Denied RODC Password Replication Group",
	"DnsUpdateProxy", "DnsAdmins", "Group Policy Creator Owners",
	"Schema Admins", "Enterprise Admins", "Enterprise Key Admins", "Key Admins",
	"Protected Users", "AAD DC Administrators", "All Users", "All Company",
}

// Load reads the file at path, applies environment overrides and defaults,
// reads secret files, and validates. Errors name the field.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	// Like kubeconfig, a relative path in the file is relative to the file,
	// so the same config works from any working directory.
	if p := c.Source.File.Path; p != "" && !filepath.IsAbs(p) {
		c.Source.File.Path = filepath.Join(filepath.Dir(path), p)
	}
	return c, nil
}

// Parse is Load without the file system for the config itself; lookupEnv
// supplies environment overrides (os.LookupEnv in production).
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %s", yamlMessage(err))
	}
	if err := applyEnv(&c, lookupEnv); err != nil {
		return nil, err
	}
	if err := c.resolveSecretFiles(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Default is the configuration with every default filled in; the file and
// the environment are decoded on top of it, so an explicit zero in the file
// stays zero (and is then validated). Defaults live here and nowhere else.
func Default() Config {
	return Config{
		Source: Source{
			Type: "file",
			MSGraph: MSGraph{
				Auth:                "client_secret",
				Cloud:               "public",
				PageSize:            999,
				MaxParallelRequests: 4,
				MaxRetries:          8,
				MaxRetryWait:        Duration(5 * time.Minute),
				RequestTimeout:      Duration(100 * time.Second),
				Delta:               defaultMSGraphDelta(),
				Subscriptions:       defaultMSGraphSubscriptions(),
			},
			LDAP:      defaultLDAP(),
			Authentik: defaultAuthentik(),
		},
		OpenFGA: OpenFGA{
			Auth:              Auth{Method: "none"},
			MaxTuplesPerWrite: 100,
			MaxParallelWrites: 4,
			MaxParallelReads:  8,
			ReadPageSize:      100,
			MaxRetries:        5,
			RetryMinWait:      Duration(200 * time.Millisecond),
			RequestTimeout:    Duration(30 * time.Second),
		},
		Mapping: Mapping{
			ObjectType: "group",
			Relation:   "member",
			User:       UserMapping{Type: "user", Key: "id", SkipDisabled: true},
			Group:      GroupMapping{Key: "name"},
			Nesting:    "flatten",
			Filters:    Filters{DefaultExcludes: true},
		},
		Sync:   defaultSync(),
		Daemon: defaultDaemon(),
	}
}

func (c *Config) resolveSecretFiles() error {
	a, g := &c.OpenFGA.Auth, &c.Source.MSGraph
	for _, s := range []struct {
		field string
		file  string
		dst   *Secret
	}{
		{"openfga.auth.api_token_file", a.APITokenFile, &a.APIToken},
		{"openfga.auth.client_secret_file", a.ClientSecretFile, &a.ClientSecret},
		{"source.msgraph.client_secret_file", g.ClientSecretFile, &g.ClientSecret},
		{"source.msgraph.token_file", g.TokenFile, &g.Token},
		{"source.ldap.bind_password_file", c.Source.LDAP.BindPasswordFile, &c.Source.LDAP.BindPassword},
		{"source.authentik.token_file", c.Source.Authentik.TokenFile, &c.Source.Authentik.Token},
	} {
		if s.file == "" {
			continue
		}
		if *s.dst != "" {
			return fieldError(s.field, "is set together with the secret itself; set one of them")
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			return fieldError(s.field, "cannot read the file: %v", err)
		}
		*s.dst = Secret(strings.TrimSpace(string(b)))
	}
	return nil
}

// Duration is a time.Duration written as "30s" or "1m30s".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 30s or 2m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Secret is a string that never prints: logs, reports, errors and dumps of
// the config show "[redacted]".
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}
func (s Secret) GoString() string             { return s.String() }
func (s Secret) MarshalYAML() (any, error)    { return s.String(), nil }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Reveal returns the secret's value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

package config

import (
	"net/url"
	"strings"
	"time"
)

// Authentik reads groups and users from authentik's REST API (v3).
type Authentik struct {
	// URL is authentik's base URL, e.g. https://auth.example.com; /api/v3
	// is appended. Plain http only for loopback hosts.
	URL string `yaml:"url"`
	// Token is an API token (intent "API") of a user or service account
	// that may view all groups and users.
	Token     Secret `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// CAFile is a PEM bundle of the CAs that sign authentik's certificate;
	// empty uses the system's roots.
	CAFile                string `yaml:"ca_file"`
	InsecureSkipTLSVerify bool   `yaml:"insecure_skip_tls_verify"` // accept any certificate: for a first test only
	// IncludeServiceAccounts keeps service accounts (user type
	// service_account and internal_service_account) as group members;
	// by default they are reported and left out, like Entra's service
	// principals.
	IncludeServiceAccounts bool `yaml:"include_service_accounts"`

	PageSize       int      `yaml:"page_size"`      // objects per page
	MaxRetries     int      `yaml:"max_retries"`    // per request, on 429, 5xx and dropped connections
	MaxRetryWait   Duration `yaml:"max_retry_wait"` // total wait per request before giving up
	RequestTimeout Duration `yaml:"request_timeout"`
}

func defaultAuthentik() Authentik {
	return Authentik{
		PageSize:       500,
		MaxRetries:     8,
		MaxRetryWait:   Duration(2 * time.Minute),
		RequestTimeout: Duration(60 * time.Second),
	}
}

func (a Authentik) validate(add func(field, format string, args ...any)) {
	const p = "source.authentik."
	u, err := url.Parse(a.URL)
	switch {
	case a.URL == "":
		add(p+"url", "is required: authentik's base URL, e.g. https://auth.example.com")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		add(p+"url", "%q is not an https URL, e.g. https://auth.example.com", a.URL)
	case u.Scheme == "http" && !IsLoopback(u.Hostname()):
		add(p+"url", "%q would send the API token in clear text; use https (plain http is allowed only for loopback hosts)", a.URL)
	case strings.Contains(strings.TrimSuffix(u.Path, "/"), "/api/"), strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api"):
		add(p+"url", "%q: give authentik's base URL without /api/v3; groupsync appends it", a.URL)
	}
	if a.Token == "" {
		add(p+"token", "is required: an authentik API token; set GROUPSYNC_SOURCE_AUTHENTIK_TOKEN or source.authentik.token_file")
	}
	if a.InsecureSkipTLSVerify && a.CAFile != "" {
		add(p+"insecure_skip_tls_verify", "is set together with ca_file; with ca_file the certificate can be verified, so drop insecure_skip_tls_verify")
	}
	if a.PageSize < 1 || a.PageSize > 1000 {
		add(p+"page_size", "must be between 1 and 1000; got %d", a.PageSize)
	}
	if a.MaxRetries < 0 || a.MaxRetries > 20 {
		add(p+"max_retries", "must be between 0 and 20; got %d", a.MaxRetries)
	}
	if a.MaxRetryWait <= 0 {
		add(p+"max_retry_wait", "must be positive, e.g. 2m")
	}
	if a.RequestTimeout <= 0 {
		add(p+"request_timeout", "must be positive, e.g. 60s")
	}
}

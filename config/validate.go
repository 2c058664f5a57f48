package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// FieldError is a configuration error tied to one field, by its YAML path
// ("openfga.store_name") so that the user knows exactly what to change.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var (
	typeName     = regexp.MustCompile(`^[^:#@\s]{1,254}$`)
	relationName = regexp.MustCompile(`^[^:#@\s]{1,50}$`)
	storeName    = regexp.MustCompile(`^[a-zA-Z0-9\s.\-/^_&@]{3,64}$`)
	yamlTypeNote = regexp.MustCompile(`field (\S+) not found in type config\.\w+`)
)

// Validate checks the whole config and returns every problem at once, each
// naming its field.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError(field, format, args...))
	}

	switch c.Source.Type {
	case "file":
		if c.Source.File.Path == "" {
			add("source.file.path", "is required for source.type file: the YAML or JSON tenant to read")
		}
	case "msgraph":
		c.Source.MSGraph.validate(add)
	case "ldap":
		c.Source.LDAP.validate(add)
	case "authentik":
		c.Source.Authentik.validate(add)
	default:
		add("source.type", "%q is not a source groupsync knows; use file, msgraph, ldap or authentik", c.Source.Type)
	}

	o := c.OpenFGA
	if o.APIURL == "" {
		add("openfga.api_url", "is required, e.g. http://127.0.0.1:8080")
	} else if u, err := url.Parse(o.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("openfga.api_url", "%q is not an http(s) URL, e.g. http://127.0.0.1:8080", o.APIURL)
	}
	switch {
	case o.StoreID == "" && o.StoreName == "":
		add("openfga.store_id", "set store_id or store_name to choose the OpenFGA store")
	case o.StoreID != "" && o.StoreName != "":
		add("openfga.store_name", "is set together with openfga.store_id; set only one")
	case o.StoreName != "" && !storeName.MatchString(o.StoreName):
		add("openfga.store_name", "%q is not a valid OpenFGA store name (3-64 letters, digits, spaces or .-/^_&@)", o.StoreName)
	}
	switch o.Auth.Method {
	case "none":
	case "api_token":
		if o.Auth.APIToken == "" {
			add("openfga.auth.api_token", "is required for auth method api_token; set GROUPSYNC_OPENFGA_AUTH_API_TOKEN or openfga.auth.api_token_file")
		}
	case "client_credentials":
		if o.Auth.ClientID == "" {
			add("openfga.auth.client_id", "is required for auth method client_credentials")
		}
		if o.Auth.ClientSecret == "" {
			add("openfga.auth.client_secret", "is required for auth method client_credentials; set GROUPSYNC_OPENFGA_AUTH_CLIENT_SECRET or openfga.auth.client_secret_file")
		}
		if o.Auth.TokenIssuer == "" {
			add("openfga.auth.token_issuer", "is required for auth method client_credentials, e.g. auth.example.com or https://auth.example.com/oauth/token")
		}
	default:
		add("openfga.auth.method", "%q is not one of none, api_token, client_credentials", o.Auth.Method)
	}
	between := func(field string, v, lo, hi int, why string) {
		if v < lo || v > hi {
			add(field, "must be between %d and %d%s; got %d", lo, hi, why, v)
		}
	}
	between("openfga.max_tuples_per_write", o.MaxTuplesPerWrite, 1, 1000, " (the server's --max-tuples-per-write, 100 by default)")
	between("openfga.max_parallel_writes", o.MaxParallelWrites, 1, 64, "")
	between("openfga.max_parallel_reads", o.MaxParallelReads, 1, 64, "")
	between("openfga.read_page_size", o.ReadPageSize, 1, 100, " (the server's maximum page)")
	between("openfga.max_retries", o.MaxRetries, 0, 15, "")
	if o.RetryMinWait <= 0 {
		add("openfga.retry_min_wait", "must be positive, e.g. 200ms")
	}
	if o.RequestTimeout <= 0 {
		add("openfga.request_timeout", "must be positive, e.g. 30s")
	}

	m := c.Mapping
	if !typeName.MatchString(m.ObjectType) {
		add("mapping.object_type", "%q is not a valid OpenFGA type name (no whitespace, ':', '#' or '@')", m.ObjectType)
	}
	if !relationName.MatchString(m.Relation) {
		add("mapping.relation", "%q is not a valid OpenFGA relation name (1-50 characters, no whitespace, ':', '#' or '@')", m.Relation)
	}
	if !typeName.MatchString(m.User.Type) {
		add("mapping.user.type", "%q is not a valid OpenFGA type name (no whitespace, ':', '#' or '@')", m.User.Type)
	}
	switch k := m.User.Key; {
	case k == "id", k == "upn", k == "username", k == "mail":
	case strings.HasPrefix(k, "attribute:") && len(k) > len("attribute:"):
	default:
		add("mapping.user.key", "%q is not one of id, username, upn, mail, attribute:<name>", k)
	}
	switch m.Group.Key {
	case "name", "id":
	default:
		add("mapping.group.key", "%q is not one of name, id", m.Group.Key)
	}
	if r := m.Group.ReplaceWhitespace; strings.ContainsAny(r, " \t\r\n#:") {
		add("mapping.group.replace_whitespace", "%q may not itself contain whitespace, '#' or ':'", r)
	}
	switch m.Nesting {
	case "flatten", "userset", "direct":
	default:
		add("mapping.nesting", "%q is not one of flatten, userset, direct", m.Nesting)
	}
	for _, list := range []struct {
		field string
		rules []Match
	}{{"mapping.filters.include", m.Filters.Include}, {"mapping.filters.exclude", m.Filters.Exclude}} {
		for i, r := range list.rules {
			if err := r.Validate(); err != nil {
				add(fmt.Sprintf("%s[%d]", list.field, i), "%v", err)
			}
		}
	}
	validateGrants(m.Grants, add)
	c.Sync.validate(add)
	c.Daemon.validate(add)
	return errors.Join(errs...)
}

// Validate checks that exactly one field is set and that it compiles.
func (r Match) Validate() error {
	set := 0
	for _, v := range []string{r.Name, r.Glob, r.Regex, r.ID} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return errors.New("set exactly one of name, glob, regex, id")
	}
	if r.Glob != "" {
		if _, err := path.Match(r.Glob, ""); err != nil {
			return fmt.Errorf("glob %q is malformed: %v", r.Glob, err)
		}
	}
	if r.Regex != "" {
		if _, err := regexp.Compile(r.Regex); err != nil {
			return fmt.Errorf("regex %q does not compile: %v", r.Regex, err)
		}
	}
	return nil
}

// yamlMessage turns the YAML decoder's type-centred wording into the user's:
// which key, on which line, is not a setting.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	msg = yamlTypeNote.ReplaceAllString(msg, "unknown setting $1 (check its spelling and indentation)")
	return strings.Join(strings.Fields(msg), " ")
}

// GraphClouds are the national clouds: login authority and Graph host.
var GraphClouds = map[string]struct{ Authority, Graph string }{
	"public":    {"https://login.microsoftonline.com/", "https://graph.microsoft.com"},
	"usgov":     {"https://login.microsoftonline.us/", "https://graph.microsoft.us"},
	"usgov-dod": {"https://login.microsoftonline.us/", "https://dod-graph.microsoft.us"},
	"china":     {"https://login.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn"},
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (g MSGraph) validate(add func(field, format string, args ...any)) {
	const p = "source.msgraph."
	needTenant := func() {
		if g.TenantID == "" {
			add(p+"tenant_id", "is required for auth %s: the directory (tenant) id of the app registration", g.Auth)
		} else if !guid.MatchString(g.TenantID) && !strings.Contains(g.TenantID, ".") {
			add(p+"tenant_id", "%q is neither a GUID nor a domain such as contoso.onmicrosoft.com", g.TenantID)
		}
	}
	needClient := func() {
		if g.ClientID == "" {
			add(p+"client_id", "is required for auth %s: the application (client) id", g.Auth)
		}
	}
	switch g.Auth {
	case "client_secret":
		needTenant()
		needClient()
		if g.ClientSecret == "" {
			add(p+"client_secret", "is required for auth client_secret; set GROUPSYNC_SOURCE_MSGRAPH_CLIENT_SECRET or source.msgraph.client_secret_file")
		}
	case "client_certificate":
		needTenant()
		needClient()
		if g.CertificateFile == "" {
			add(p+"certificate_file", "is required for auth client_certificate: a PEM or PFX file holding the certificate and its private key")
		}
	case "workload_identity":
		// azidentity reads AZURE_TENANT_ID, AZURE_CLIENT_ID and
		// AZURE_FEDERATED_TOKEN_FILE (set by the AKS webhook) when these are empty.
	case "managed_identity":
		// client_id selects a user-assigned identity; empty is the system-assigned one.
	case "default":
	case "token":
		if g.Token == "" {
			add(p+"token", "is required for auth token; set GROUPSYNC_SOURCE_MSGRAPH_TOKEN or source.msgraph.token_file (e.g. the output of az account get-access-token --resource-type ms-graph --query accessToken -o tsv)")
		}
	default:
		add(p+"auth", "%q is not one of client_secret, client_certificate, workload_identity, managed_identity, default, token", g.Auth)
	}
	if _, ok := GraphClouds[g.Cloud]; !ok {
		add(p+"cloud", "%q is not one of public, usgov, usgov-dod, china", g.Cloud)
	}
	for _, f := range []struct{ field, value string }{{"graph_endpoint", g.GraphEndpoint}, {"authority_host", g.AuthorityHost}} {
		if f.value == "" {
			continue
		}
		u, err := url.Parse(f.value)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			add(p+f.field, "%q is not an https URL", f.value)
		case u.Scheme == "http" && !IsLoopback(u.Hostname()):
			add(p+f.field, "%q: plain http is allowed only for loopback hosts; use https", f.value)
		}
	}
	if g.PageSize < 1 || g.PageSize > 999 {
		add(p+"page_size", "must be between 1 and 999 (Graph's maximum page); got %d", g.PageSize)
	}
	if g.MaxParallelRequests < 1 || g.MaxParallelRequests > 64 {
		add(p+"max_parallel_requests", "must be between 1 and 64; got %d", g.MaxParallelRequests)
	}
	if g.MaxRetries < 0 || g.MaxRetries > 20 {
		add(p+"max_retries", "must be between 0 and 20; got %d", g.MaxRetries)
	}
	if g.MaxRetryWait <= 0 {
		add(p+"max_retry_wait", "must be positive, e.g. 5m")
	}
	if g.RequestTimeout <= 0 {
		add(p+"request_timeout", "must be positive, e.g. 100s")
	}
	if g.Groups.SecurityEnabledOnly && g.Groups.IncludeDistribution {
		add(p+"groups.include_distribution", "contradicts groups.security_enabled_only (distribution lists are not security-enabled)")
	}
	g.Delta.validate(add)
	g.Subscriptions.validate(add)
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

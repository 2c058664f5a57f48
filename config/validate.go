package config

import (
	"errors"
	"fmt"
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
	default:
		add("source.type", "%q is not a source groupsync knows; use file", c.Source.Type)
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
	case k == "id", k == "upn", k == "mail":
	case strings.HasPrefix(k, "attribute:") && len(k) > len("attribute:"):
	default:
		add("mapping.user.key", "%q is not one of id, upn, mail, attribute:<name>", k)
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

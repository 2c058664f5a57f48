package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthentikDefaults(t *testing.T) {
	c, err := Parse([]byte(doc(`{type: authentik, authentik: {url: "https://auth.example.com", token: t}}`, "", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Source.Authentik
	if a.PageSize != 500 || a.MaxRetries != 8 || time.Duration(a.MaxRetryWait) != 2*time.Minute ||
		time.Duration(a.RequestTimeout) != time.Minute || a.IncludeServiceAccounts {
		t.Errorf("defaults: %+v", a)
	}
}

func TestAuthentikSettingsAreValidated(t *testing.T) {
	cases := []struct{ authentik, field string }{
		{`{token: t}`, "source.authentik.url"},
		{`{url: "auth.example.com", token: t}`, "source.authentik.url"},
		{`{url: "http://auth.example.com", token: t}`, "source.authentik.url"},
		{`{url: "https://auth.example.com/api/v3", token: t}`, "source.authentik.url"},
		{`{url: "https://auth.example.com"}`, "source.authentik.token"},
		{`{url: "https://auth.example.com", token: t, ca_file: ca.pem, insecure_skip_tls_verify: true}`, "source.authentik.insecure_skip_tls_verify"},
		{`{url: "https://auth.example.com", token: t, page_size: 0}`, "source.authentik.page_size"},
		{`{url: "https://auth.example.com", token: t, max_retries: -1}`, "source.authentik.max_retries"},
		{`{url: "https://auth.example.com", token: t, request_timeout: 0s}`, "source.authentik.request_timeout"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(doc("{type: authentik, authentik: "+tc.authentik+"}", "", "")), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") {
			t.Errorf("%s: want an error naming %s, got %v", tc.authentik, tc.field, err)
		}
	}
	for _, ok := range []string{`{url: "http://127.0.0.1:9000", token: t}`, `{url: "https://auth.example.com/", token: t}`, `{url: "https://example.com/authentik", token: t}`} {
		if _, err := Parse([]byte(doc("{type: authentik, authentik: "+ok+"}", "", "")), noEnv); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestAuthentikTokenFromEnvAndFile(t *testing.T) {
	const src = `{type: authentik, authentik: {url: "https://auth.example.com"}}`
	c, err := Parse([]byte(doc(src, "", "")), envOf(map[string]string{"GROUPSYNC_SOURCE_AUTHENTIK_TOKEN": "env-tok"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Authentik.Token.Reveal() != "env-tok" {
		t.Fatal(c.Source.Authentik.Token.Reveal())
	}
	f := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(f, []byte("file-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte(doc(`{type: authentik, authentik: {url: "https://auth.example.com", token_file: `+f+`}}`, "", "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Authentik.Token.Reveal() != "file-tok" {
		t.Fatal(c.Source.Authentik.Token.Reveal())
	}
	if s := sprintf("%v %+v %#v", c.Source.Authentik, c.Source, c.Source.Authentik); strings.Contains(s, "file-tok") {
		t.Fatalf("token printed: %s", s)
	}
}

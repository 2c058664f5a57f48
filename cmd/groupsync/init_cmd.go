package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/groupsync/groupsync/config"
)

// starterSources are the sources `groupsync init` writes a config for.
var starterSources = []string{"msgraph", "ldap", "authentik", "file"}

func newInitCmd(o *options) *cobra.Command {
	var source, fgaURL, store string
	var force bool
	cmd := &cobra.Command{
		Use:   "init --source msgraph|ldap|authentik|file --openfga-url URL",
		Short: "Write a commented starter config for a source and an OpenFGA, then run check",
		Long: `init writes a starter config (-c, groupsync.yaml by default) for the chosen
source and OpenFGA: every setting that matters at the start, commented, with
secrets left to environment variables. It refuses to overwrite a file unless
--force. Then it runs "groupsync check" with the new file and exits as check
does (1 until the placeholders are filled in and the credentials work).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, ok := starterConfig(source, fgaURL, store)
			if !ok {
				return fmt.Errorf("--source %q: use one of %s", source, strings.Join(starterSources, ", "))
			}
			if fgaURL == "" {
				return errors.New("--openfga-url is required: the OpenFGA HTTP API, e.g. http://openfga:8080")
			}
			if _, err := os.Stat(o.configPath); err == nil && !force {
				return fmt.Errorf("%s exists; choose another path with -c, or --force to overwrite it", o.configPath)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err := os.WriteFile(o.configPath, []byte(body), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(o.stdout, "wrote %s (source %s); checking it:\n", o.configPath, source)
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return fmt.Errorf("%w\nfill in the settings named above in %s, then run: groupsync check -c %s", err, o.configPath, o.configPath)
			}
			log, err := o.logger()
			if err != nil {
				return err
			}
			return o.printChecks(checkAll(cmd.Context(), cfg, log))
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "msgraph, ldap, authentik or file")
	cmd.Flags().StringVar(&fgaURL, "openfga-url", "", "the OpenFGA HTTP API, e.g. http://openfga:8080")
	cmd.Flags().StringVar(&store, "store-name", "groupsync", "the OpenFGA store (created by \"groupsync model write\" if missing)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

// starterConfig is the commented starter file for source.
func starterConfig(source, fgaURL, store string) (string, bool) {
	src, ok := map[string]string{
		"msgraph": `source:
  type: msgraph
  msgraph:
    # The app registration (docs/entra.md): GroupMember.Read.All, and
    # User.Read.All when mapping.user.key is not id.
    tenant_id: contoso.onmicrosoft.com   # your tenant's id or domain
    client_id: 00000000-0000-0000-0000-000000000000   # the application (client) id
    auth: client_secret                  # secret in GROUPSYNC_SOURCE_MSGRAPH_CLIENT_SECRET
    groups:
      security_enabled_only: true
    delta:
      enabled: true                      # later runs read only what changed
`,
		"ldap": `source:
  type: ldap
  ldap:
    # docs/ldap.md. The bind password in GROUPSYNC_SOURCE_LDAP_BIND_PASSWORD.
    url: ldaps://ldap.example.com:636
    flavor: openldap                     # openldap or ad
    bind_dn: cn=groupsync,ou=services,dc=example,dc=com
    base_dn: dc=example,dc=com
`,
		"authentik": `source:
  type: authentik
  authentik:
    # docs/authentik.md. An API token in GROUPSYNC_SOURCE_AUTHENTIK_TOKEN.
    url: https://authentik.example.com   # the base URL, without /api/v3
`,
		"file": `source:
  type: file
  file:
    path: tenant.yaml                    # users and groups, README "File source format"
`,
	}[source]
	if !ok {
		return "", false
	}
	key := "id"
	if source != "msgraph" {
		key = "username"
	}
	return fmt.Sprintf(`# groupsync starter config (groupsync init --source %s). Every setting, with
# its default, is in README.md "Configuration"; any can also come from the
# environment (GROUPSYNC_<PATH>, e.g. GROUPSYNC_OPENFGA_AUTH_API_TOKEN).
# Next: groupsync check, groupsync model write, groupsync plan, groupsync apply.
%s
openfga:
  api_url: %s
  store_name: %s
  auth:
    method: none                         # api_token (GROUPSYNC_OPENFGA_AUTH_API_TOKEN) or client_credentials

mapping:
  object_type: group
  relation: member
  user:
    type: user
    key: %s                              # id, username, mail or attribute:<name>: what your apps call users
  group:
    key: name                            # name (readable) or id (stable)
    lowercase: true
    replace_whitespace: "-"
  nesting: flatten                       # flatten, userset or direct
  filters:
    include: []                          # e.g. [{glob: "app-*"}]; empty: every group

sync:
  ownership:
    mode: owned                          # groupsync deletes only in groups it records as its own
    instance: %s
    # store: groupsync-registry          # set when an application writes this store's model (Incus)
  guards:
    max_deletes: 1000
    max_delete_percent: 30
`, source, src, fgaURL, store, key, source), true
}

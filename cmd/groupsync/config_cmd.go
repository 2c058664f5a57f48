package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/openfga/language/pkg/go/transformer"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	gsync "github.com/groupsync/groupsync/sync"
)

func newConfigCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the configuration file"}
	var show, env bool
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check the config file and environment overrides; print every problem with its field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env {
				for _, e := range config.EnvVars() {
					fmt.Fprintf(o.stdout, "%-48s %s\n", e[0], e[1])
				}
				return nil
			}
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			if _, err := gsync.NewMapper(cfg.Mapping); err != nil {
				return err
			}
			if show {
				// Secrets marshal as [redacted].
				out, err := yaml.Marshal(cfg)
				if err != nil {
					return err
				}
				_, err = o.stdout.Write(out)
				return err
			}
			fmt.Fprintf(o.stdout, "%s: valid (source %s, OpenFGA %s)\n", o.configPath, cfg.Source.Type, cfg.OpenFGA.APIURL)
			return nil
		},
	}
	validate.Flags().BoolVar(&show, "show", false, "print the effective config, defaults and environment applied, secrets redacted")
	validate.Flags().BoolVar(&env, "env", false, "list the environment variables that override settings, and exit")
	cmd.AddCommand(validate)
	return cmd
}

func newModelCmd(o *options) *cobra.Command {
	var format string
	var fragment bool
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Print the OpenFGA model the mapping needs (DSL or JSON; whole or as a fragment to merge)",
		Long: `Print the smallest OpenFGA model that accepts every tuple the configured
mapping writes, with the ownership type when the registry or the lease is on.

-o json prints it as the JSON that "fga model write --file model.json" takes.
--fragment prints only the types and relations to merge into an existing
model (an application's), with the user types groupsync writes.

"groupsync model write" does that merge against the store: it adds what is
missing and never changes a type or relation it did not add.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "dsl" && format != "json" {
				return fmt.Errorf("--output %q: use dsl or json", format)
			}
			cfg, err := o.configOrDefault(cmd.Flags().Changed("config") || os.Getenv("GROUPSYNC_CONFIG") != "")
			if err != nil {
				return err
			}
			dsl, err := modelDSL(cfg)
			if fragment && err == nil {
				dsl, err = neededDSL(cfg)
			}
			if err != nil {
				return err
			}
			out, err := renderModel(dsl, format, fragment)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(o.stdout, out)
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "dsl", "format: dsl, or json (OpenFGA's JSON model)")
	cmd.Flags().BoolVar(&fragment, "fragment", false, "print only the types and relations to merge into an existing model")

	var dryRun bool
	write := &cobra.Command{
		Use:   "write",
		Short: "Merge what the mapping needs into the store's model (creating the store if missing), printing the additions",
		Long: `Read the latest model of the store (openfga.store_id, or openfga.store_name,
created if missing) and add what groupsync needs: missing types whole, missing
relations on existing types. Every other type, relation and condition stays as
it is, so an application's model (Incus, ...) keeps working.

The additions are printed before they are written. A relation that exists but
does not accept a user type groupsync writes (e.g. "member: [user]" where
nested groups need group#member) is not changed: the command fails, says what
to add, and writes nothing. Nothing to add writes nothing. An empty store gets
groupsync's whole model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			return modelWrite(cmd.Context(), o.stdout, cfg, dryRun)
		},
	}
	write.Flags().BoolVar(&dryRun, "dry-run", false, "print the additions and write nothing (no store is created either)")
	cmd.AddCommand(write)
	return cmd
}

// modelWrite merges the model the mapping needs into the store's latest
// model and reports, before writing, what it adds.
func modelWrite(ctx context.Context, w io.Writer, cfg *config.Config, dryRun bool) error {
	full, err := modelDSL(cfg)
	if err != nil {
		return err
	}
	need, err := neededDSL(cfg)
	if err != nil {
		return err
	}
	plan, err := openfga.PlanModel(ctx, cfg.OpenFGA, need, full)
	if err != nil {
		return withModelHints(err, cfg)
	}
	switch {
	case plan.StoreID == "":
		will := "will be"
		if dryRun {
			will = "would be"
		}
		fmt.Fprintf(w, "openfga.store_name %q: no store has this name yet; it %s created with groupsync's model:\n", plan.StoreName, will)
	case plan.BaseModelID == "":
		fmt.Fprintf(w, "store %s (found) has no authorization model yet; groupsync's model:\n", plan.StoreID)
	case plan.Merge.UpToDate():
		fmt.Fprintf(w, "store %s (found), authorization model %s is up to date: nothing written\n", plan.StoreID, plan.BaseModelID)
		return registryStoreWrite(ctx, w, cfg, dryRun)
	default:
		fmt.Fprintf(w, "store %s (found), authorization model %s lacks what groupsync needs; adding, every other type and relation kept:\n", plan.StoreID, plan.BaseModelID)
	}
	fmt.Fprint(w, plan.Merge.Diff())
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing written")
		return registryStoreWrite(ctx, w, cfg, dryRun)
	}
	su, err := plan.Apply(ctx)
	if err != nil {
		return err
	}
	verb := "found"
	if su.StoreCreated {
		verb = "created"
	}
	fmt.Fprintf(w, "store %s (%s), authorization model %s written\n", su.StoreID, verb, su.ModelID)
	return registryStoreWrite(ctx, w, cfg, dryRun)
}

// registryStoreWrite prepares sync.ownership.store, when set: a store of
// groupsync's own whose model it writes whole (the first apply would too).
func registryStoreWrite(ctx context.Context, w io.Writer, cfg *config.Config, dryRun bool) error {
	own := cfg.Sync.Ownership
	if !usesRegistryStore(cfg) {
		return nil
	}
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return err
	}
	dsl := openfga.RegistryModelDSL(own.Type, mapper.OwnedTypes()...)
	if dryRun {
		fmt.Fprintf(w, "registry store %q (sync.ownership.store): would be created if missing, with the model:\n%s", own.Store, dsl)
		return nil
	}
	rc := cfg.OpenFGA
	rc.StoreID, rc.StoreName, rc.AuthorizationModelID = "", own.Store, ""
	su, err := openfga.EnsureSetup(ctx, rc, dsl)
	if err != nil {
		return fmt.Errorf("registry store %q (sync.ownership.store): %w", own.Store, err)
	}
	verb, model := "found", "up to date"
	if su.StoreCreated {
		verb = "created"
	}
	if su.ModelWritten {
		model = "written"
	}
	fmt.Fprintf(w, "registry store %s %q (%s), authorization model %s %s\n", su.StoreID, own.Store, verb, su.ModelID, model)
	return nil
}

// usesRegistryStore reports whether the ownership markers or the lease
// live in a store of groupsync's own rather than in openfga's store.
func usesRegistryStore(cfg *config.Config) bool {
	return cfg.Sync.Ownership.Store != "" && (cfg.Sync.Ownership.ModeOrDefault() == config.OwnershipOwned || cfg.Sync.Lease.Enabled)
}

// needsOwnershipType reports whether openfga's store itself must have the
// ownership type.
func needsOwnershipType(cfg *config.Config) bool {
	return cfg.Sync.Ownership.Store == "" && (cfg.Sync.Ownership.ModeOrDefault() == config.OwnershipOwned || cfg.Sync.Lease.Enabled)
}

// withModelHints adds to a merge conflict the settings that would make
// groupsync need less, so the user can choose between changing the
// application's model and changing the mapping.
func withModelHints(err error, cfg *config.Config) error {
	var ce *openfga.ModelConflictError
	if !errors.As(err, &ce) {
		return err
	}
	m, own := cfg.Mapping, cfg.Sync.Ownership
	var hints []string
	for _, c := range ce.Conflicts {
		var h string
		switch {
		case c.Type == m.ObjectType && c.Relation == m.Relation && slices.Contains(c.Missing, m.ObjectType+"#"+m.Relation) && m.Nesting == "userset":
			h = fmt.Sprintf("or set mapping.nesting to flatten, which writes each nested group's users as %s tuples instead of %s#%s usersets", m.User.Type, m.ObjectType, m.Relation)
		case c.Type == m.ObjectType && c.Relation == m.Relation:
			h = fmt.Sprintf("or point mapping.object_type/mapping.relation at a relation that accepts %s", strings.Join(c.Missing, ", "))
		case c.Type == own.Type:
			h = fmt.Sprintf("or set sync.ownership.type to a type the application does not use (it is %q)", own.Type)
		}
		if h != "" && !slices.Contains(hints, h) {
			hints = append(hints, h)
		}
	}
	if len(hints) == 0 {
		return err
	}
	return fmt.Errorf("%w\n  %s", err, strings.Join(hints, "\n  "))
}

// renderModel prints a model in DSL as the DSL or the JSON that OpenFGA's
// tools read; a fragment is the types without the model header, under a
// comment saying how to merge them (JSON stays a whole, valid model).
func renderModel(dsl, format string, fragment bool) (string, error) {
	js, err := transformer.TransformDSLToJSON(dsl)
	if err != nil {
		return "", fmt.Errorf("the model the mapping needs does not parse: %w", err)
	}
	if format == "json" {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(js), "", "  "); err != nil {
			return "", err
		}
		b.WriteByte('\n')
		return b.String(), nil
	}
	if !fragment {
		return dsl, nil
	}
	canon, err := transformer.TransformJSONStringToDSL(js)
	if err != nil {
		return "", err
	}
	// The header is the first two lines ("model", "  schema 1.1").
	_, types, _ := strings.Cut(*canon, "\n")
	_, types, _ = strings.Cut(types, "\n")
	return fragmentComment + types, nil
}

const fragmentComment = `# groupsync's part of an OpenFGA model (schema 1.1), to merge into yours:
# add each type you lack whole; on a type you have, add each relation you
# lack, and make each relation you have accept (at least) the user types
# listed, keeping the rest of its definition. "groupsync model write" does
# this merge against the store and refuses to change relations it did not add.
`

// configOrDefault loads the config file or, when no config was named and
// the default file is absent, the defaults (so "groupsync model" works
// before any setup).
func (o *options) configOrDefault(named bool) (*config.Config, error) {
	cfg, err := config.Load(o.configPath)
	if errors.Is(err, fs.ErrNotExist) && !named {
		def := config.Default()
		return &def, nil
	}
	return cfg, err
}

// modelDSL is the model groupsync writes into an empty store: the
// mapping's (which accepts group usersets whatever the nesting, so a later
// switch to userset needs no model change), with the ownership type when
// the registry or the lease is on.
func modelDSL(cfg *config.Config) (string, error) {
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return "", err
	}
	dsl := mapper.ModelDSL()
	if needsOwnershipType(cfg) {
		dsl += "\n" + openfga.OwnershipDSL(cfg.Sync.Ownership.Type, mapper.OwnedTypes()...)
	}
	return dsl, nil
}

// neededDSL is the least an existing model must have for this config: the
// mapping's relation accepting only the user types it writes (no
// group#member unless mapping.nesting is userset), and the ownership type
// when the registry or the lease is on.
func neededDSL(cfg *config.Config) (string, error) {
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return "", err
	}
	scope := mapper.WriteScope()
	dsl := fmt.Sprintf("model\n  schema 1.1\n\ntype %s\n\ntype %s\n  relations\n    define %s: [%s]\n",
		cfg.Mapping.User.Type, scope.ObjectType, scope.Relation, strings.Join(scope.UserTypes, ", "))
	if needsOwnershipType(cfg) {
		dsl += "\n" + openfga.OwnershipDSL(cfg.Sync.Ownership.Type, mapper.OwnedTypes()...)
	}
	return dsl, nil
}

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

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
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Print the OpenFGA model (DSL) that the mapping needs",
		Long: `Print the smallest OpenFGA model that accepts every tuple the configured
mapping writes. Merge it into your own model, or let "groupsync model write"
create the store and write it for a new setup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.configOrDefault(cmd.Flags().Changed("config") || os.Getenv("GROUPSYNC_CONFIG") != "")
			if err != nil {
				return err
			}
			dsl, err := modelDSL(cfg)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(o.stdout, dsl)
			return err
		},
	}
	write := &cobra.Command{
		Use:   "write",
		Short: "Create the store named by openfga.store_name if missing, and write the model if it differs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			dsl, err := modelDSL(cfg)
			if err != nil {
				return err
			}
			storeID, modelID, created, err := openfga.EnsureStore(cmd.Context(), cfg.OpenFGA, dsl)
			if err != nil {
				return err
			}
			verb := "found"
			if created {
				verb = "created"
			}
			fmt.Fprintf(o.stdout, "store %s (%s), authorization model %s\n", storeID, verb, modelID)
			return nil
		},
	}
	cmd.AddCommand(write)
	return cmd
}

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

// modelDSL is the model the mapping needs, with the ownership type when
// the registry or the lease is on.
func modelDSL(cfg *config.Config) (string, error) {
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return "", err
	}
	dsl := mapper.ModelDSL()
	if cfg.Sync.Ownership.Mode == config.OwnershipOwned || cfg.Sync.Lease.Enabled {
		dsl += "\n" + openfga.OwnershipDSL(cfg.Sync.Ownership.Type, cfg.Mapping.ObjectType)
	}
	return dsl, nil
}

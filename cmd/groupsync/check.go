package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
	gsync "github.com/groupsync/groupsync/sync"
)

func newCheckCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check credentials and permissions against the source and OpenFGA, without syncing",
		Long: `Check gets a token from the identity provider and says which permission is
missing (for Microsoft Graph: GroupMember.Read.All, and User.Read.All when the
mapping keys users on a property), then finds the OpenFGA store and model and
checks that the model accepts the tuples the mapping writes. Exit 0 when
everything passed, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			log, err := o.logger()
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return o.printChecks(checkAll(cmd.Context(), cfg, log))
		},
	}
}

func checkAll(ctx context.Context, cfg *config.Config, log *zap.Logger) []gsync.CheckResult {
	var out []gsync.CheckResult
	src, err := newSource(cfg, log, engineOptions{})
	switch {
	case err != nil:
		out = append(out, gsync.CheckResult{What: "source " + cfg.Source.Type, Err: err})
	default:
		if c, ok := src.(gsync.Checker); ok {
			out = append(out, c.Check(ctx)...)
		}
	}

	what := "OpenFGA store at " + cfg.OpenFGA.APIURL
	sink, err := openfga.New(ctx, cfg.OpenFGA)
	if err != nil {
		return append(out, gsync.CheckResult{What: what, Err: err})
	}
	out = append(out, gsync.CheckResult{What: what, Note: fmt.Sprintf("store %s, authorization model %s", sink.StoreID(), sink.ModelID())})
	mapper, err := gsync.NewMapper(cfg.Mapping)
	if err != nil {
		return append(out, gsync.CheckResult{What: "mapping", Err: err})
	}
	ws := mapper.WriteScope()
	out = append(out, gsync.CheckResult{What: "model accepts the mapping's tuples", Err: sink.Verify(ctx, ws),
		Note: fmt.Sprintf("%s#%s from %v", ws.ObjectType, ws.Relation, ws.UserTypes)})
	for _, g := range mapper.GrantScopes() {
		err := sink.Verify(ctx, g.Scope)
		if err != nil {
			err = fmt.Errorf("grant rule %s: %w", strings.Join(g.Rules, ", "), err)
		}
		out = append(out, gsync.CheckResult{What: "model accepts grant rule " + strings.Join(g.Rules, ", "), Err: err,
			Note: fmt.Sprintf("%s#%s from %s", g.Scope.ObjectType, g.Scope.Relation, g.Scope.UserTypes[0])})
	}
	out = append(out, checkOwnership(ctx, cfg, sink, mapper)...)
	probe := mapper.Scope()
	probe.Objects = []string{probe.ObjectType + ":groupsync-check"}
	_, err = sink.Read(ctx, probe)
	return append(out, gsync.CheckResult{What: "OpenFGA read", Err: err, Note: "allowed"})
}

// checkOwnership checks where the ownership markers and the lease live:
// the ownership type in openfga's store, or sync.ownership.store.
func checkOwnership(ctx context.Context, cfg *config.Config, sink *openfga.Sink, mapper *gsync.Mapper) []gsync.CheckResult {
	own := cfg.Sync.Ownership
	switch {
	case usesRegistryStore(cfg):
		what := fmt.Sprintf("registry store %q (sync.ownership.store)", own.Store)
		rc := cfg.OpenFGA
		rc.StoreID, rc.StoreName, rc.AuthorizationModelID = "", own.Store, ""
		s, err := openfga.New(ctx, rc)
		if errors.Is(err, openfga.ErrStoreNotFound) {
			return []gsync.CheckResult{{What: what, Note: "does not exist yet; the first apply (or groupsync model write) creates it"}}
		}
		if err != nil {
			return []gsync.CheckResult{{What: what, Err: err}}
		}
		return []gsync.CheckResult{{What: what, Note: fmt.Sprintf("store %s, authorization model %s", s.StoreID(), s.ModelID())}}
	case needsOwnershipType(cfg):
		reg := openfga.NewRegistry(sink, own, mapper.OwnedTypes()...)
		return []gsync.CheckResult{{What: "model has the ownership type " + own.Type, Err: reg.Verify(ctx)}}
	}
	return nil
}

// printChecks prints one line per result and fails when any did.
func (o *options) printChecks(results []gsync.CheckResult) error {
	failed := 0
	for _, r := range results {
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(o.stdout, "FAIL  %s: %v\n", r.What, r.Err)
		case r.Warning != "":
			fmt.Fprintf(o.stdout, "warn  %s: %s\n", r.What, r.Warning)
		default:
			fmt.Fprintf(o.stdout, "ok    %s: %s\n", r.What, r.Note)
		}
	}
	if failed > 0 {
		return &exitError{code: gsync.ExitError, err: fmt.Errorf("%d of %d checks failed", failed, len(results))}
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sinks/openfga"
)

func newLeaseCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Show or release this instance's lease (a killed run's lease blocks others until sync.lease.ttl)",
		Args:  cobra.NoArgs,
	}
	var format string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show who holds the lease, since when and until when",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := o.lease(cmd.Context())
			if err != nil {
				return err
			}
			st, err := l.Status(cmd.Context())
			if err != nil {
				return err
			}
			return printLease(o, format, st, "")
		},
	}
	status.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	var force bool
	release := &cobra.Command{
		Use:   "release",
		Short: "Release an expired lease, or with --force a held one whose run is dead",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := o.lease(cmd.Context())
			if err != nil {
				return err
			}
			st, err := l.Release(cmd.Context(), force)
			if err != nil {
				return err
			}
			verb := "released"
			if !st.Held {
				verb = "nothing to release"
			}
			return printLease(o, format, st, verb)
		},
	}
	release.Flags().BoolVar(&force, "force", false, "release a lease that has not expired (only when the run holding it is dead)")
	release.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	cmd.AddCommand(status, release)
	return cmd
}

// lease is the configured instance's lease, where it lives: openfga's
// store or sync.ownership.store.
func (o *options) lease(ctx context.Context) (*openfga.Lease, error) {
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return nil, err
	}
	log, err := o.logger()
	if err != nil {
		return nil, err
	}
	sink, err := openfga.New(ctx, cfg.OpenFGA)
	if err != nil {
		return nil, err
	}
	l, ok := newTarget(cfg, sink, nil).Lease(cfg.Sync.Ownership, time.Duration(cfg.Sync.Lease.TTL), log).(*openfga.Lease)
	if !ok {
		return nil, fmt.Errorf("this target keeps no lease")
	}
	return l, nil
}

func printLease(o *options, format string, st openfga.LeaseState, verb string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "text":
	default:
		return fmt.Errorf("--output %q: use text or json", format)
	}
	switch {
	case verb != "":
		fmt.Fprintf(o.stdout, "lease %s: %s\n", st.Lease, verb)
	case !st.Held:
		fmt.Fprintf(o.stdout, "lease %s: free\n", st.Lease)
	case st.Expired:
		fmt.Fprintf(o.stdout, "lease %s: taken at %s, expired at %s (the next run takes it over)\n", st.Lease, st.TakenAt.Format(time.RFC3339), st.Expires.Format(time.RFC3339))
	default:
		fmt.Fprintf(o.stdout, "lease %s: held since %s, until %s\n", st.Lease, st.TakenAt.Format(time.RFC3339), st.Expires.Format(time.RFC3339))
	}
	return nil
}

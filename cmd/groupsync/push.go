package main

import (
	"cmp"
	"context"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/metrics"
	gsync "github.com/groupsync/groupsync/sync"
)

// pushOptions are plan's and apply's Pushgateway flags.
type pushOptions struct {
	url string
	job string
}

// addPushFlags adds --pushgateway and --pushgateway-job to plan or apply.
func addPushFlags(cmd *cobra.Command, p *pushOptions) {
	cmd.Flags().StringVar(&p.url, "pushgateway", "", "push this run's metrics to the Pushgateway at this URL (default daemon.pushgateway.url)")
	cmd.Flags().StringVar(&p.job, "pushgateway-job", "", "job label of the pushed metrics (default daemon.pushgateway.job)")
}

// oneShot is the metrics of one plan or apply, for a Pushgateway.
type oneShot struct {
	url, job string // "" url: push nothing
	m        *metrics.Metrics
	http     *runHTTP
	start    time.Time
}

// start begins a one-shot run's metrics; the flags win over cfg's
// daemon.pushgateway.
func (p pushOptions) start(cfg *config.Config) *oneShot {
	m := metrics.New()
	m.SetBuildInfo(buildVersion())
	return &oneShot{
		url: cmp.Or(p.url, cfg.Daemon.Pushgateway.URL), job: cmp.Or(p.job, cfg.Daemon.Pushgateway.Job, "groupsync"),
		m: m, http: newRunHTTP(m), start: time.Now(),
	}
}

// option counts the run's requests when there is a Pushgateway to tell
// (pass it to newEngine); without one the source and sink keep their own
// transports.
func (s *oneShot) option() engineOption {
	if s.url == "" {
		return func(*engineOptions) {}
	}
	return withHTTP(s.http)
}

// push records the run (engine and rep are nil when it failed before
// them) and pushes it to the Pushgateway, if any. A failed push is logged:
// the run's own outcome decides the exit code.
func (s *oneShot) push(ctx context.Context, engine *gsync.Engine, rep *gsync.Report, runErr error, log *zap.Logger) {
	defer s.http.closeIdle()
	if s.url == "" {
		return
	}
	if engine != nil {
		observeSource(s.m, engine.Source)
	}
	end := time.Now()
	s.m.ObserveRun(metrics.Run{Report: rep, Err: runErr, End: end, Duration: end.Sub(s.start)})
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := metrics.Push(pctx, s.url, s.job, s.m.Registry(), nil); err != nil {
		log.Warn("metrics not pushed", zap.Error(err))
		return
	}
	log.Debug("metrics pushed", zap.String("job", s.job))
}

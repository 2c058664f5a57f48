package main

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/metrics"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sources/authentik"
	"github.com/groupsync/groupsync/sources/msgraph"
	gsync "github.com/groupsync/groupsync/sync"
)

func newDaemonCmd(o *options) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Reconcile on a schedule, serving /metrics, /healthz, /readyz and POST /run",
		Long: `daemon runs what apply does on daemon.schedule (cron fields, @hourly,
"@every 30m"), once at start unless daemon.run_at_start is false, each
scheduled run delayed by a random jitter below daemon.jitter. Never two
runs at once: a trigger during a run is skipped and counted.

On daemon.listen it serves /metrics (Prometheus), /healthz (liveness),
/readyz (ready while the last successful run ended within
daemon.ready_max_age) and, when daemon.trigger.enabled, POST /run with
"Authorization: Bearer <daemon.trigger.token>" to run now (?wait=true to
get the outcome).

SIGHUP reloads the config file; an invalid one is refused and the daemon
keeps the config it has. SIGTERM or SIGINT stops it: no new request is sent,
those in flight get daemon.shutdown_grace to finish, and it exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.logger()
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			m := metrics.New()
			m.SetBuildInfo(buildVersion())
			d, err := daemon.New(daemon.Options{
				Load:    func() (*config.Config, error) { return config.Load(o.configPath) },
				Run:     daemonRun(m, log, !dryRun),
				Metrics: m,
				Log:     log,
			})
			if err != nil {
				return err
			}
			addr := d.Config().Daemon.Listen
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("daemon.listen %q: %w", addr, err)
			}
			ctx := cmd.Context() // ends on SIGTERM and SIGINT (see run)
			stopReload := reloadOnHangup(ctx, d, log, o.configPath)
			defer stopReload()
			if dryRun {
				log.Info("--dry-run: each run plans and writes nothing")
			}
			return d.Run(ctx, ln)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "plan on schedule but write nothing (see what the daemon would do, in the metrics and logs)")
	return cmd
}

// reloadOnHangup reloads the daemon's config on each SIGHUP until ctx ends
// or stop is called.
func reloadOnHangup(ctx context.Context, d *daemon.Daemon, log *zap.Logger, path string) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the config", zap.String("config", path))
				_ = d.Reload() // Reload logs a refused config itself
			case <-ctx.Done():
				return
			case <-quit:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(quit)
		wg.Wait()
	}
}

// daemonRun is one scheduled run: the engine newEngine builds from the
// config of the moment, applied (or only planned, for --dry-run).
func daemonRun(m *metrics.Metrics, log *zap.Logger, apply bool) daemon.RunFunc {
	return func(ctx context.Context, cfg *config.Config) (*gsync.Report, error) {
		h := newRunHTTP(m)
		defer h.closeIdle()
		engine, err := newEngine(ctx, cfg, log, withHTTP(h))
		if err != nil {
			return nil, err
		}
		rep, err := engine.Run(ctx, apply)
		observeSource(m, engine.Source)
		return rep, err
	}
}

// observeSource adds what the run's source counted to the metrics.
func observeSource(m *metrics.Metrics, src gsync.Source) {
	switch s := src.(type) {
	case *msgraph.Source:
		st := s.Stats()
		m.ObserveSource(metrics.SourceStats{BatchItems: st.BatchItems.Load(), Retries: st.Retries.Load(),
			Throttled: st.Throttled.Load(), Waited: time.Duration(st.WaitedNanos.Load())})
	case *authentik.Source:
		st := s.Stats()
		m.ObserveSource(metrics.SourceStats{Retries: st.Retries.Load(), Throttled: st.Throttled.Load()})
	}
}

// engineOptions are what newEngine adds to the source and the sink it
// builds: the daemon's (and a pushed one-shot run's) HTTP instrumentation.
type engineOptions struct {
	http *runHTTP // nil: the source's and sink's own transports
}

// engineOption adjusts newEngine.
type engineOption func(*engineOptions)

// withHTTP sends the source's and the sink's requests through h.
func withHTTP(h *runHTTP) engineOption { return func(eo *engineOptions) { eo.http = h } }

func collectEngineOptions(opts []engineOption) engineOptions {
	var eo engineOptions
	for _, opt := range opts {
		opt(&eo)
	}
	return eo
}

// msgraphOptions are the Graph source's part.
func (eo engineOptions) msgraphOptions(cfg config.MSGraph) []msgraph.Option {
	if eo.http == nil {
		return nil
	}
	return []msgraph.Option{msgraph.WithTransport(eo.http.transport(metrics.TargetSource, func(t *http.Transport) {
		// What msgraph.New sets on the transport it makes when given none.
		t.MaxIdleConnsPerHost = cfg.MaxParallelRequests * 2
		t.ForceAttemptHTTP2 = true
	}))}
}

// openfgaOptions are the sink's part.
func (eo engineOptions) openfgaOptions(cfg config.OpenFGA) []openfga.Option {
	if eo.http == nil {
		return nil
	}
	return []openfga.Option{openfga.WithHTTPClient(&http.Client{Transport: eo.http.transport(metrics.TargetSink, func(t *http.Transport) {
		// What openfga.New sets on the transport it makes when given none.
		t.MaxIdleConnsPerHost = max(cfg.MaxParallelReads, cfg.MaxParallelWrites, 2)
	})})}
}

// runHTTP is one run's HTTP transports: counted in the metrics, and
// drained rather than cut off when the daemon stops.
type runHTTP struct {
	m    *metrics.Metrics
	mu   sync.Mutex
	made []*http.Transport
}

func newRunHTTP(m *metrics.Metrics) *runHTTP { return &runHTTP{m: m} }

// transport returns a new transport for target, tuned by tune.
func (h *runHTTP) transport(target string, tune func(*http.Transport)) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	tune(t)
	h.mu.Lock()
	h.made = append(h.made, t)
	h.mu.Unlock()
	return h.m.Transport(target, daemon.DrainTransport(t))
}

// closeIdle closes the run's idle connections: the next run makes its own.
func (h *runHTTP) closeIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.made {
		t.CloseIdleConnections()
	}
}

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

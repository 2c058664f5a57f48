package main

import (
	"net/http"
	"sync"

	"github.com/groupsync/groupsync/daemon"
	"github.com/groupsync/groupsync/metrics"
	"github.com/groupsync/groupsync/sinks/openfga"
	"github.com/groupsync/groupsync/sources/authentik"
	"github.com/groupsync/groupsync/sources/msgraph"
)

// engineOptions are what newEngine adds to the source and the sink it
// builds: the daemon's (and a pushed one-shot run's) HTTP instrumentation.
type engineOptions struct {
	http *runHTTP // nil: the source's and sink's own transports
	// daemon: the engine runs in the daemon, whose memory outlives a run,
	// so an incremental state kept in memory is worth keeping.
	daemon bool
}

// inDaemon marks an engine the daemon builds.
func inDaemon() engineOption { return func(eo *engineOptions) { eo.daemon = true } }

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

// Each source and the sink builds its own transport (connection limits,
// HTTP/2, TLS from the config) and lets runHTTP wrap it: the metrics and
// the drain go on top, and nothing here copies a client's settings.

// msgraphOptions are the Graph source's part.
func (eo engineOptions) msgraphOptions() []msgraph.Option {
	if eo.http == nil {
		return nil
	}
	return []msgraph.Option{msgraph.WithTransportWrapper(eo.http.wrapper(metrics.TargetSource))}
}

// authentikOptions are the authentik source's part.
func (eo engineOptions) authentikOptions() []authentik.Option {
	if eo.http == nil {
		return nil
	}
	return []authentik.Option{authentik.WithTransportWrapper(eo.http.wrapper(metrics.TargetSource))}
}

// openfgaOptions are the sink's part.
func (eo engineOptions) openfgaOptions() []openfga.Option {
	if eo.http == nil {
		return nil
	}
	return []openfga.Option{openfga.WithTransportWrapper(eo.http.wrapper(metrics.TargetSink))}
}

// runHTTP is one run's HTTP transports: counted in the metrics, and
// drained rather than cut off when the daemon stops.
type runHTTP struct {
	m    *metrics.Metrics
	mu   sync.Mutex
	idle []interface{ CloseIdleConnections() }
}

func newRunHTTP(m *metrics.Metrics) *runHTTP { return &runHTTP{m: m} }

// wrapper puts the metrics of target and the drain over a client's own
// transport, and remembers it so closeIdle can close its connections.
func (h *runHTTP) wrapper(target string) func(http.RoundTripper) http.RoundTripper {
	return func(base http.RoundTripper) http.RoundTripper {
		if c, ok := base.(interface{ CloseIdleConnections() }); ok {
			h.mu.Lock()
			h.idle = append(h.idle, c)
			h.mu.Unlock()
		}
		return h.m.Transport(target, daemon.DrainTransport(base))
	}
}

// closeIdle closes the run's idle connections: the next run makes its own.
func (h *runHTTP) closeIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.idle {
		c.CloseIdleConnections()
	}
}

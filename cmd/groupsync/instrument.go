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
// builds: the daemon's (and a pushed one-shot run's) HTTP instrumentation,
// and the request counts of a run's progress display.
type engineOptions struct {
	http     *runHTTP  // nil: the source's and sink's own transports
	progress *progress // nil: no display counts requests
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

// wrapper is every wrapper for target's transport in one (the Graph source
// takes a single one), or nil when there is none. runHTTP's goes first,
// next to the client's own transport, so that it can keep that transport
// to close its idle connections.
func (eo engineOptions) wrapper(target string) func(http.RoundTripper) http.RoundTripper {
	var wraps []func(http.RoundTripper) http.RoundTripper
	if eo.http != nil {
		wraps = append(wraps, eo.http.wrapper(target))
	}
	if eo.progress != nil {
		wraps = append(wraps, eo.progress.wrapper(target))
	}
	if len(wraps) == 0 {
		return nil
	}
	return func(rt http.RoundTripper) http.RoundTripper {
		for _, w := range wraps {
			rt = w(rt)
		}
		return rt
	}
}

// msgraphOptions are the Graph source's part.
func (eo engineOptions) msgraphOptions() []msgraph.Option {
	w := eo.wrapper(metrics.TargetSource)
	if w == nil {
		return nil
	}
	return []msgraph.Option{msgraph.WithTransportWrapper(w)}
}

// authentikOptions are the authentik source's part.
func (eo engineOptions) authentikOptions() []authentik.Option {
	w := eo.wrapper(metrics.TargetSource)
	if w == nil {
		return nil
	}
	return []authentik.Option{authentik.WithTransportWrapper(w)}
}

// openfgaOptions are the sink's part.
func (eo engineOptions) openfgaOptions() []openfga.Option {
	w := eo.wrapper(metrics.TargetSink)
	if w == nil {
		return nil
	}
	return []openfga.Option{openfga.WithTransportWrapper(w)}
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

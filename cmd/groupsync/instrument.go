package main

import (
	"net/http"
	"sync"

	"github.com/groupsync/groupsync/config"
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

// Each source's and the sink's part follows. Each rebuilds the transport
// its client would make, to put the metrics and the drain under it; once
// msgraph, openfga and authentik take a transport wrapper, each becomes
// With...TransportWrapper(eo.http.wrapper(target)) and runHTTP.transport
// goes.

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

// authentikOptions are the authentik source's part: none yet, as its
// transport carries the config's TLS settings, which only authentik.New
// should build; its requests are counted once it takes a wrapper.
func (eo engineOptions) authentikOptions() []authentik.Option { return nil }

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

package daemon

import (
	"context"
	"io"
	"net/http"
	"sync"
)

// hardStopKey carries, in a run's context, the context that ends when the
// shutdown grace period is over.
type hardStopKey struct{}

// DrainTransport lets the requests a daemon run has already sent finish
// when the daemon stops. Stopping cancels the run's context: the OpenFGA
// sink then starts no new write chunk and the source no new page, and base
// would abort every request in flight with it. Through DrainTransport a
// request in flight keeps its own deadline and is cancelled only when the
// grace period (daemon.shutdown_grace) is over, while a request whose
// context is already cancelled is not sent at all. A write that finished is
// reported written; one cut off is reported failed, and, every write being
// idempotent, the next run converges either way.
//
// Outside a daemon run (plan, apply, or a context without the daemon's
// mark) requests pass through unchanged. nil base is http.DefaultTransport.
func DrainTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return drainTransport{base}
}

type drainTransport struct{ base http.RoundTripper }

func (t drainTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	hard, ok := req.Context().Value(hardStopKey{}).(context.Context)
	if !ok {
		return t.base.RoundTrip(req)
	}
	if err := req.Context().Err(); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	ctx := context.WithoutCancel(req.Context())
	var cancel context.CancelFunc
	if deadline, ok := req.Context().Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	stopHard := context.AfterFunc(hard, cancel)
	release := func() {
		stopHard()
		cancel()
	}
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	// The body is read after RoundTrip returns: keep ctx alive until then.
	resp.Body = &releaseOnClose{ReadCloser: resp.Body, release: release}
	return resp, nil
}

type releaseOnClose struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// Package retry holds the waiting rules every client of groupsync shares
// (OpenFGA, Microsoft Graph, authentik): how long a server asks us to wait,
// a jittered exponential backoff, and a sleep that ends with its context.
package retry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// After reads a Retry-After header: delay-seconds (Graph may send a
// fraction) or an HTTP date. A negative delay or a past date means at once.
// ok is false when there is no usable header.
func After(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(min(max(secs, 0), 1<<30) * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// Backoff is the wait before retry n (from 1): minWait doubling, capped at
// a minute, with full jitter in its upper half.
func Backoff(minWait time.Duration, n int) time.Duration {
	return Policy{MinWait: minWait}.Wait(n, nil)
}

// Sleep waits d, or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	for code, want := range map[int]bool{200: false, 400: false, 401: false, 403: false, 404: false, 409: false,
		429: true, 500: true, 501: false, 502: true, 503: true, 504: true} {
		if got := Status(code); got != want {
			t.Errorf("Status(%d) = %v", code, got)
		}
	}
}

func TestPolicyWait(t *testing.T) {
	p := Policy{MinWait: 200 * time.Millisecond, MaxWait: time.Minute, MaxRetryAfter: 2 * time.Minute}
	for n, base := range map[int]time.Duration{1: 100, 2: 200, 3: 400, 4: 800} {
		base *= time.Millisecond
		for range 50 {
			if d := p.Wait(n, nil); d < base || d >= 2*base {
				t.Fatalf("Wait(%d) = %v, want in [%v, %v)", n, d, base, 2*base)
			}
		}
	}
	if d := p.Wait(40, nil); d < 30*time.Second || d >= time.Minute {
		t.Errorf("Wait(40) = %v, want capped at a minute", d)
	}
	if d := p.Wait(1, http.Header{"Retry-After": {"2"}}); d != 2*time.Second {
		t.Errorf("Retry-After 2: %v", d)
	}
	if d := p.Wait(1, http.Header{"Retry-After": {"86400"}}); d != 2*time.Minute {
		t.Errorf("Retry-After of a day: %v, want the cap", d)
	}
	if d := (Policy{}).Wait(3, nil); d != 0 {
		t.Errorf("zero policy waits %v", d)
	}
}

func TestDoRetriesUntilSuccess(t *testing.T) {
	p := Policy{MaxRetries: 5, MinWait: time.Microsecond}
	calls, retried := 0, 0
	out, err := p.Do(context.Background(), Hooks{Retrying: func(Result, time.Duration) { retried++ }}, func(context.Context) Result {
		calls++
		if calls < 3 {
			return Result{Err: errors.New("503"), Retry: true, Status: 503}
		}
		return Result{}
	})
	if err != nil || out.Attempts != 3 || calls != 3 || retried != 2 {
		t.Fatalf("err %v, outcome %+v, calls %d, retried %d", err, out, calls, retried)
	}
}

func TestDoStopsOnPermanentErrorAndCaps(t *testing.T) {
	perm := errors.New("400")
	out, err := Policy{MaxRetries: 5}.Do(context.Background(), Hooks{}, func(context.Context) Result {
		return Result{Err: perm, Status: 400}
	})
	if err != perm || out.Attempts != 1 {
		t.Fatalf("permanent: %v %+v", err, out)
	}
	busy := errors.New("429")
	out, err = Policy{MaxRetries: 2, MinWait: time.Microsecond}.Do(context.Background(), Hooks{}, func(context.Context) Result {
		return Result{Err: busy, Retry: true}
	})
	if err != busy || out.Attempts != 3 || !Exhausted(context.Background(), err) {
		t.Fatalf("retries: %v %+v", err, out)
	}
	out, err = Policy{MaxRetries: 10, Budget: 1500 * time.Millisecond}.Do(context.Background(), Hooks{}, func(context.Context) Result {
		return Result{Err: busy, Retry: true, Header: http.Header{"Retry-After": {"1"}}}
	})
	if err != busy || out.Attempts != 2 || out.Waited != time.Second {
		t.Fatalf("budget: %v %+v", err, out)
	}
}

func TestDoEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out, err := Policy{MaxRetries: 3, MinWait: time.Hour}.Do(ctx, Hooks{Retrying: func(Result, time.Duration) { cancel() }}, func(context.Context) Result {
		return Result{Err: errors.New("503"), Retry: true}
	})
	if err != context.Canceled || out.Attempts != 1 || Exhausted(ctx, err) {
		t.Fatalf("%v %+v", err, out)
	}
}

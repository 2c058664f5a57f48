package msgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/internal/retry"
)

// batchSize is Graph's limit of requests in one $batch.
const batchSize = 20

// batchReads describes reads sent with sendBatches; K is what the caller
// knows a read by (a group id, a page of a group's members).
type batchReads[K any] struct {
	what       string // "member", "group", "user": for errors
	permission string // the one a 401/403 hint names
	request    func(context.Context, K) (*abs.RequestInformation, error)
	// path names a read in GiveUpError.
	path func(K) string
	// name names a read in other errors.
	name func(K) string
	// answer takes an item's answer when it is not to be retried, and
	// returns the reads it leads to. It is called from several goroutines.
	answer func(K, batchAnswer) ([]K, error)
}

// batchRead is a read and what retrying it has cost so far: each item of a
// $batch is retried on its own, so each has its own account.
type batchRead[K any] struct {
	key K
	itemRetries
}

type itemRetries struct {
	attempts int
	waited   time.Duration
}

// sendBatches sends reads in $batch requests from one queue of pending
// reads: the keys given, the reads their answers lead to (a group's next
// page, a subgroup's first page) and the items to retry. A batch takes up to
// 20 reads from the front of the queue, with up to max_parallel_requests
// batches in flight. A batch goes out full, or with what is pending when no
// batch is in flight (none could add to the queue): so reads that answers
// lead to fill the batches still to be sent instead of going out in rounds
// of their own. Those reads join the queue at its front: a big group's next
// page is the longest chain of reads left, and must not wait behind other
// groups' first pages. The items a server throttles or fails with a
// retryable status are retried (Graph answers each item on its own); while
// the longest wait any of them needs runs, no batch is sent.
//
// A read fails the whole call: the other batches are cancelled and waited
// for, and the first error is returned.
func sendBatches[K any](ctx context.Context, s *Source, b batchReads[K], keys []K) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		next []batchRead[K]
		wait time.Duration
		err  error
	}
	pending := make([]batchRead[K], len(keys))
	for i, k := range keys {
		pending[i] = batchRead[K]{key: k}
	}
	var (
		limit    = max(1, s.cfg.MaxParallelRequests)
		done     = make(chan result, limit)
		inFlight int
		resume   time.Time // no batch is sent before it: a throttled item's wait
		firstErr error
	)
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	for {
		if firstErr == nil {
			for inFlight < limit && len(pending) > 0 && (len(pending) >= batchSize || inFlight == 0) && !time.Now().Before(resume) {
				n := min(batchSize, len(pending))
				chunk := slices.Clone(pending[:n])
				pending = pending[n:]
				inFlight++
				go func() {
					next, wait, err := sendBatchOnce(ctx, s, b, chunk)
					done <- result{next, wait, err}
				}()
			}
			if inFlight == 0 && len(pending) == 0 {
				return nil
			}
		} else if inFlight == 0 {
			return firstErr
		}
		var (
			timer     *time.Timer
			wake      <-chan time.Time
			cancelled <-chan struct{}
		)
		if firstErr == nil {
			cancelled = ctx.Done()
			if wait := time.Until(resume); wait > 0 && len(pending) > 0 {
				timer = time.NewTimer(wait)
				wake = timer.C
			}
		}
		select {
		case r := <-done:
			inFlight--
			if r.err != nil {
				fail(r.err)
				break
			}
			if firstErr != nil {
				break
			}
			// Front of the queue, in the order the batch gave them.
			pending = append(r.next, pending...)
			if r.wait > 0 {
				now := time.Now()
				if until := now.Add(r.wait); until.After(resume) {
					s.log.Debug("Graph throttled batch items; waiting", zap.Duration("wait", r.wait), zap.Int("items", len(r.next)))
					if resume.After(now) {
						now = resume
					}
					s.stats.addWait(until.Sub(now))
					resume = until
				}
			}
		case <-wake:
		case <-cancelled:
			fail(ctx.Err())
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// sendBatchOnce sends one $batch and returns the reads its answers lead to
// and the items to retry, and how long to wait before sending those.
func sendBatchOnce[K any](ctx context.Context, s *Source, b batchReads[K], reads []batchRead[K]) ([]batchRead[K], time.Duration, error) {
	req := msgraphcore.NewBatchRequest(s.adapter)
	ids := make([]string, len(reads))
	for i, r := range reads {
		info, err := b.request(ctx, r.key)
		if err != nil {
			return nil, 0, fmt.Errorf("msgraph: build the request for %s: %w", b.name(r.key), err)
		}
		item, err := req.AddBatchRequestStep(*info)
		if err != nil {
			return nil, 0, fmt.Errorf("msgraph: build batch: %w", err)
		}
		ids[i] = *item.GetId()
	}
	s.stats.BatchItems.Add(int64(len(reads)))
	answers, err := s.sendBatch(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("msgraph: $batch of %d %s reads: %w", len(reads), b.what, describe(err, b.permission))
	}
	var (
		next []batchRead[K]
		wait time.Duration
	)
	// In the order of reads, so that the queue's order does not depend on
	// map order.
	for i, r := range reads {
		id := ids[i]
		a, ok := answers[id]
		if !ok || a.Status == 0 {
			return nil, 0, fmt.Errorf("msgraph: $batch answer lacks request %s (%s)", id, b.name(r.key))
		}
		if !retry.Status(a.Status) {
			more, err := b.answer(r.key, a)
			if err != nil {
				return nil, 0, err
			}
			for _, k := range more {
				next = append(next, batchRead[K]{key: k})
			}
			continue
		}
		w, err := r.again(s, a, b.path(r.key))
		if err != nil {
			return nil, 0, err
		}
		wait = max(wait, w)
		next = append(next, r)
	}
	return next, wait, nil
}

// again counts a retryable item answer against the item's account and the
// source's retry policy, as retryTransport does for a whole request, and
// returns the wait before the next attempt, or a GiveUpError when the
// policy is spent. Unlike retryTransport it counts a retry even when it
// gives up: Stats has always counted batch items so.
func (c *itemRetries) again(s *Source, a batchAnswer, path string) (time.Duration, error) {
	w := s.retry.Wait(c.attempts+1, a.header())
	s.stats.retry(a.Status)
	c.attempts++
	if c.attempts > s.retry.MaxRetries || (s.retry.Budget > 0 && c.waited+w > s.retry.Budget) {
		code, msg := answerError(a.Body)
		return 0, &GiveUpError{Method: "GET", Path: path + " (in $batch)",
			Attempts: c.attempts, Waited: c.waited, Status: a.Status, Code: code, Message: msg}
	}
	c.waited += w
	return w, nil
}

// batchAnswer is one item of a $batch answer.
type batchAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (a batchAnswer) header() http.Header {
	h := make(http.Header, len(a.Headers))
	for k, v := range a.Headers {
		h.Set(k, v)
	}
	return h
}

// sendBatch sends req through the SDK's adapter (authentication,
// middlewares, retryTransport) and returns its answers by request id,
// decoded with encoding/json rather than the SDK: see decodeObject.
func (s *Source) sendBatch(ctx context.Context, req msgraphcore.BatchRequest) (map[string]batchAnswer, error) {
	info := abs.NewRequestInformation()
	info.Method = abs.POST
	info.UrlTemplate = "{+baseurl}/$batch"
	if err := info.SetContentFromParsable(ctx, s.adapter, "application/json", req); err != nil {
		return nil, err
	}
	info.Headers.TryAdd("Accept", "application/json")
	raw, err := s.adapter.SendPrimitive(ctx, info, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return nil, err
	}
	data, _ := raw.([]byte)
	var doc struct {
		Responses []batchAnswer `json:"responses"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode the $batch answer: %w", err)
	}
	out := make(map[string]batchAnswer, len(doc.Responses))
	for _, a := range doc.Responses {
		out[a.ID] = a
	}
	return out, nil
}

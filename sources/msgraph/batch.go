package msgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

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

// sendBatches sends reads in $batch requests, round by round: a round sends
// every pending read, 20 to a batch, a few batches in flight; the reads the
// answers lead to and the items to retry make the next round. The items a
// server throttles or fails with a retryable status are retried (Graph
// answers each item on its own), after the longest wait any of them needs.
func sendBatches[K any](ctx context.Context, s *Source, b batchReads[K], keys []K) error {
	pending := make([]batchRead[K], len(keys))
	for i, k := range keys {
		pending[i] = batchRead[K]{key: k}
	}
	for len(pending) > 0 {
		var (
			mu   sync.Mutex
			next []batchRead[K]
			wait time.Duration
		)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.cfg.MaxParallelRequests)
		for chunk := range slices.Chunk(pending, batchSize) {
			g.Go(func() error {
				n, w, err := sendBatchOnce(gctx, s, b, chunk)
				mu.Lock()
				next = append(next, n...)
				wait = max(wait, w)
				mu.Unlock()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if wait > 0 {
			s.log.Debug("Graph throttled batch items; waiting", zap.Duration("wait", wait), zap.Int("items", len(next)))
			if err := retry.Sleep(ctx, wait); err != nil {
				return err
			}
			s.stats.addWait(wait)
		}
		pending = next
	}
	return nil
}

// sendBatchOnce sends one $batch and returns the next round's reads and
// how long to wait before it.
func sendBatchOnce[K any](ctx context.Context, s *Source, b batchReads[K], reads []batchRead[K]) ([]batchRead[K], time.Duration, error) {
	req := msgraphcore.NewBatchRequest(s.adapter)
	byID := make(map[string]batchRead[K], len(reads))
	for _, r := range reads {
		info, err := b.request(ctx, r.key)
		if err != nil {
			return nil, 0, fmt.Errorf("msgraph: build the request for %s: %w", b.name(r.key), err)
		}
		item, err := req.AddBatchRequestStep(*info)
		if err != nil {
			return nil, 0, fmt.Errorf("msgraph: build batch: %w", err)
		}
		byID[*item.GetId()] = r
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
	for id, r := range byID {
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

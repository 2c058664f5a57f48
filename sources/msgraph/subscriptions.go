package msgraph

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/subscriptions"
	"go.uber.org/zap"

	"github.com/groupsync/groupsync/config"
)

// Subscriptions keeps one Graph change-notification subscription on
// "groups" alive for the daemon: created when missing, renewed before it
// expires, reauthorized when Graph asks, recreated when Graph removed it.
// Membership changes arrive as "updated" notifications on the group, so
// one subscription on the collection covers groups and members.
//
// Its state (the subscription's id and expiry) lives in memory. On the
// first Ensure it lists the app's subscriptions and takes over the one
// with the same notificationUrl, so a restart does not pile subscriptions
// up against Graph's quota. Graph never returns a subscription's
// clientState, so a subscription can be taken over only when the
// clientState is configured; with a random one, the old subscriptions are
// deleted and a new one is created.
//
// Requests go through the Source's client: its credential, transport and
// retries. All methods are safe for concurrent use; they serialize.
type Subscriptions struct {
	src         *Source
	cfg         config.MSGraphSubscriptions
	clientState string
	configured  bool // clientState came from the config
	lifetime    time.Duration
	log         *zap.Logger
	now         func() time.Time

	mu         sync.Mutex
	discovered bool
	id         string
	expiry     time.Time
	// touched is when the subscription was last created, renewed or
	// reauthorized: Graph asks not to reauthorize and PATCH the same
	// subscription within 10 minutes, and either one reauthorizes.
	touched time.Time
}

// SubscriptionResource is what groupsync subscribes to.
const SubscriptionResource = "groups"

// subscriptionChangeTypes are the change types Graph supports on groups:
// "updated" covers creation and membership changes too.
const subscriptionChangeTypes = "updated,deleted"

// reauthorizeQuiet is Graph's 10 minutes between a PATCH and a reauthorize.
const reauthorizeQuiet = 10 * time.Minute

// expiryMargin keeps the requested expiry under Graph's maximum despite
// clock skew between this host and Graph.
const expiryMargin = 10 * time.Minute

// SubscriptionOption adjusts Subscriptions.
type SubscriptionOption func(*Subscriptions)

// WithSubscriptionClock replaces time.Now (tests).
func WithSubscriptionClock(now func() time.Time) SubscriptionOption {
	return func(m *Subscriptions) { m.now = now }
}

// WithSubscriptionLifetime asks for subscriptions that live d instead of
// Graph's maximum for groups (tests, or a short-lived deployment).
func WithSubscriptionLifetime(d time.Duration) SubscriptionOption {
	return func(m *Subscriptions) { m.lifetime = d }
}

// NewSubscriptions returns a manager for the source's tenant. It does not
// contact Graph: call Ensure. The clientState is cfg.ClientState, or a
// random secret when that is empty.
func NewSubscriptions(src *Source, cfg config.MSGraphSubscriptions, opts ...SubscriptionOption) (*Subscriptions, error) {
	if cfg.NotificationURL == "" {
		return nil, errors.New("msgraph: subscriptions need source.msgraph.subscriptions.notification_url")
	}
	m := &Subscriptions{src: src, cfg: cfg, log: src.log, now: time.Now,
		lifetime: config.MaxGraphGroupSubscription - expiryMargin}
	if cs := cfg.ClientState.Reveal(); cs != "" {
		m.clientState, m.configured = cs, true
	} else {
		// 32 random bytes, 43 characters: well under Graph's 128.
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("msgraph: clientState: %w", err)
		}
		m.clientState = base64.RawURLEncoding.EncodeToString(b)
	}
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// ClientState returns the secret that Graph echoes in every notification;
// never log it.
func (m *Subscriptions) ClientState() string { return m.clientState }

// Current returns the subscription's id and expiry; "" before Ensure
// created or found one.
func (m *Subscriptions) Current() (id string, expiry time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id, m.expiry
}

// Ensure makes sure a subscription exists and is not close to expiring:
// it finds the one a previous process left (first call), creates one when
// there is none or it expired or vanished, and renews it when less than
// renew_before of its lifetime is left. Call it at start and then
// regularly (Run does); each call costs one request when nothing is due.
func (m *Subscriptions) Ensure(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.discovered {
		if err := m.discover(ctx); err != nil {
			return err
		}
		m.discovered = true
	}
	return m.ensure(ctx)
}

func (m *Subscriptions) ensure(ctx context.Context) error {
	now := m.now()
	if m.id == "" || !now.Before(m.expiry) {
		return m.create(ctx)
	}
	if m.expiry.Sub(now) < time.Duration(m.cfg.RenewBefore) {
		return m.renew(ctx)
	}
	// Groups get no subscriptionRemoved lifecycle event: look.
	sub, err := m.client().BySubscriptionId(m.id).Get(ctx, nil)
	switch {
	case statusOf(err) == http.StatusNotFound:
		m.log.Warn("Graph subscription vanished; creating another", zap.String("subscription", m.id))
		return m.create(ctx)
	case err != nil:
		return fmt.Errorf("msgraph: read subscription %s: %w", m.id, describe(err, "Group.Read.All"))
	}
	if e := sub.GetExpirationDateTime(); e != nil {
		m.expiry = *e
	}
	return nil
}

// Run calls Ensure now and then every interval until ctx ends. A failure
// is logged and tried again sooner, after a minute doubling up to the
// interval (at start the daemon's listener may not serve yet, and Graph
// validates the URL before it creates anything); the scheduled run covers
// the changes missed meanwhile.
func (m *Subscriptions) Run(ctx context.Context, every time.Duration) {
	retry := min(time.Minute, every)
	for {
		wait := every
		if err := m.Ensure(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("Graph change notifications: cannot keep the subscription", zap.Error(err), zap.Duration("retry_in", retry))
			wait, retry = retry, min(retry*2, every)
		} else {
			retry = min(time.Minute, every)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Reauthorize answers a reauthorizationRequired lifecycle notification for
// subscription id. A subscription that is due for renewal is renewed
// instead (a PATCH reauthorizes too), one that Graph no longer knows is
// recreated, and one touched in the last 10 minutes is left alone, as
// Graph asks. Notifications about other subscriptions are ignored.
func (m *Subscriptions) Reauthorize(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == "" || id != m.id {
		m.log.Info("Graph lifecycle notification for a subscription this process does not keep; ignored", zap.String("subscription", id))
		return nil
	}
	now := m.now()
	if !now.Before(m.expiry) {
		return m.create(ctx)
	}
	if m.expiry.Sub(now) < time.Duration(m.cfg.RenewBefore) {
		return m.renew(ctx)
	}
	if now.Sub(m.touched) < reauthorizeQuiet {
		return nil
	}
	err := m.client().BySubscriptionId(id).Reauthorize().Post(ctx, nil)
	switch {
	case statusOf(err) == http.StatusNotFound:
		m.log.Warn("Graph subscription vanished before reauthorization; creating another", zap.String("subscription", id))
		return m.create(ctx)
	case err != nil:
		return fmt.Errorf("msgraph: reauthorize subscription %s: %w", id, describe(err, "Group.Read.All"))
	}
	m.touched = now
	m.log.Info("Graph subscription reauthorized", zap.String("subscription", id))
	return nil
}

// Recreate answers a subscriptionRemoved lifecycle notification: when id is
// the kept subscription, it creates a new one. Changes made meanwhile are
// for a delta round to find.
func (m *Subscriptions) Recreate(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id != m.id && m.id != "" {
		m.log.Info("Graph removed a subscription this process does not keep; ignored", zap.String("subscription", id))
		return nil
	}
	m.id = ""
	return m.create(ctx)
}

// Delete removes the kept subscription, for a clean shutdown of a daemon
// that will not come back (a restart can keep it instead: see Ensure).
func (m *Subscriptions) Delete(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.id == "" {
		return nil
	}
	err := m.client().BySubscriptionId(m.id).Delete(ctx, nil)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return fmt.Errorf("msgraph: delete subscription %s: %w", m.id, describe(err, "Group.Read.All"))
	}
	m.log.Info("Graph subscription deleted", zap.String("subscription", m.id))
	m.id, m.expiry = "", time.Time{}
	return nil
}

func (m *Subscriptions) client() *subscriptions.SubscriptionsRequestBuilder {
	return m.src.client.Subscriptions()
}

// discover finds the subscriptions a previous process created for this
// notificationUrl: it keeps the one that lives longest when the
// clientState is configured, and deletes the others (all of them with a
// random clientState, whose notifications it could not check).
func (m *Subscriptions) discover(ctx context.Context) error {
	var found []models.Subscriptionable
	page, err := m.client().Get(ctx, nil)
	for {
		if err != nil {
			return fmt.Errorf("msgraph: list subscriptions: %w", describe(err, "Group.Read.All"))
		}
		for _, s := range page.GetValue() {
			if deref(s.GetNotificationUrl()) == m.cfg.NotificationURL &&
				strings.EqualFold(strings.TrimPrefix(deref(s.GetResource()), "/"), SubscriptionResource) {
				found = append(found, s)
			}
		}
		next := page.GetOdataNextLink()
		if next == nil || *next == "" {
			break
		}
		page, err = m.client().WithUrl(*next).Get(ctx, nil)
	}
	var keep models.Subscriptionable
	if m.configured {
		now := m.now()
		for _, s := range found {
			e := s.GetExpirationDateTime()
			// A lifecycle URL cannot be added to a subscription later:
			// one made without the configured URL is replaced.
			if e == nil || !now.Before(*e) || deref(s.GetLifecycleNotificationUrl()) != m.cfg.LifecycleURL {
				continue
			}
			if keep == nil || e.After(*keep.GetExpirationDateTime()) {
				keep = s
			}
		}
	}
	for _, s := range found {
		if s == keep {
			continue
		}
		id := deref(s.GetId())
		if err := m.client().BySubscriptionId(id).Delete(ctx, nil); err != nil && statusOf(err) != http.StatusNotFound {
			// Not fatal: it expires on its own, and its notifications
			// fail the clientState check or coalesce with ours.
			m.log.Warn("cannot delete a stale Graph subscription", zap.String("subscription", id), zap.Error(describe(err, "Group.Read.All")))
		} else {
			m.log.Info("deleted a stale Graph subscription", zap.String("subscription", id))
		}
	}
	if keep != nil {
		m.id, m.expiry = deref(keep.GetId()), *keep.GetExpirationDateTime()
		m.log.Info("Graph subscription taken over", zap.String("subscription", m.id), zap.Time("expires", m.expiry))
	}
	return nil
}

// create subscribes. Graph validates the notification (and lifecycle) URL
// before answering, so the daemon's handler must already serve.
func (m *Subscriptions) create(ctx context.Context) error {
	now := m.now()
	s := models.NewSubscription()
	s.SetChangeType(ptr(subscriptionChangeTypes))
	s.SetResource(ptr(SubscriptionResource))
	s.SetNotificationUrl(ptr(m.cfg.NotificationURL))
	if m.cfg.LifecycleURL != "" {
		s.SetLifecycleNotificationUrl(ptr(m.cfg.LifecycleURL))
	}
	s.SetClientState(ptr(m.clientState))
	s.SetExpirationDateTime(ptr(now.Add(m.lifetime).UTC()))
	got, err := m.client().Post(ctx, s, nil)
	if err != nil {
		m.id = ""
		return fmt.Errorf("msgraph: create subscription (Graph first calls %s, which must answer its validation): %w",
			m.cfg.NotificationURL, describe(err, "Group.Read.All"))
	}
	m.id = deref(got.GetId())
	m.expiry = now.Add(m.lifetime)
	if e := got.GetExpirationDateTime(); e != nil {
		m.expiry = *e
	}
	m.touched = now
	m.log.Info("Graph subscription created", zap.String("subscription", m.id), zap.Time("expires", m.expiry))
	return nil
}

// renew extends the subscription to a full lifetime (and reauthorizes it).
func (m *Subscriptions) renew(ctx context.Context) error {
	now := m.now()
	s := models.NewSubscription()
	s.SetExpirationDateTime(ptr(now.Add(m.lifetime).UTC()))
	got, err := m.client().BySubscriptionId(m.id).Patch(ctx, s, nil)
	switch {
	case statusOf(err) == http.StatusNotFound:
		m.log.Warn("Graph subscription vanished before renewal; creating another", zap.String("subscription", m.id))
		return m.create(ctx)
	case err != nil:
		return fmt.Errorf("msgraph: renew subscription %s: %w", m.id, describe(err, "Group.Read.All"))
	}
	m.expiry = now.Add(m.lifetime)
	if e := got.GetExpirationDateTime(); e != nil {
		m.expiry = *e
	}
	m.touched = now
	m.log.Info("Graph subscription renewed", zap.String("subscription", m.id), zap.Time("expires", m.expiry))
	return nil
}

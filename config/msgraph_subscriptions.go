package config

import (
	"net/url"
	"time"
)

// MSGraphSubscriptions makes the daemon subscribe to Microsoft Graph change
// notifications for groups: Graph POSTs to notification_url when a group
// or its membership changes, and the daemon answers with a delta round
// instead of waiting for the next scheduled run. The scheduled run stays
// the backstop: Graph can drop notifications for groups without telling.
type MSGraphSubscriptions struct {
	Enabled bool `yaml:"enabled"`
	// NotificationURL is the public https URL of the daemon's
	// /webhooks/graph (through the ingress that terminates TLS), e.g.
	// https://groupsync.example.com/webhooks/graph. Graph only calls https
	// URLs; plain http is accepted for loopback hosts, for tests.
	NotificationURL string `yaml:"notification_url"`
	// LifecycleURL receives lifecycle notifications (reauthorizationRequired
	// ...), e.g. https://groupsync.example.com/webhooks/graph/lifecycle;
	// empty asks Graph for none. It can be notification_url itself.
	LifecycleURL string `yaml:"lifecycle_url"`
	// ClientState is the secret Graph echoes in every notification, so the
	// daemon can tell Graph's notifications from forged ones; at most 128
	// characters. Empty generates a random one at start; set it (from a
	// Secret) to keep a subscription across restarts, since Graph never
	// returns it when the daemon lists its subscriptions.
	ClientState Secret `yaml:"client_state"`
	// RenewBefore renews the subscription when less than this is left of
	// its lifetime (Graph allows at most 41760 minutes, under 29 days, for
	// groups).
	RenewBefore Duration `yaml:"renew_before"`
}

// MaxGraphGroupSubscription is the longest a Graph subscription on groups
// may live: 41760 minutes, under 29 days.
const MaxGraphGroupSubscription = 41760 * time.Minute

// MaxGraphClientState is the longest clientState Graph accepts.
const MaxGraphClientState = 128

func defaultMSGraphSubscriptions() MSGraphSubscriptions {
	// A third of the lifetime left: two renewal attempts a week apart can
	// fail before the subscription expires.
	return MSGraphSubscriptions{RenewBefore: Duration(MaxGraphGroupSubscription / 3)}
}

func (s MSGraphSubscriptions) validate(add func(field, format string, args ...any)) {
	const p = "source.msgraph.subscriptions."
	checkURL := func(field, v string, required bool) {
		if v == "" {
			if required {
				add(p+field, "is required when subscriptions are enabled: the public https URL of the daemon's /webhooks/graph, e.g. https://groupsync.example.com/webhooks/graph")
			}
			return
		}
		u, err := url.Parse(v)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			add(p+field, "%q is not an https URL", v)
		case u.Scheme == "http" && !IsLoopback(u.Hostname()):
			add(p+field, "%q: Graph only calls https URLs; plain http is allowed only for loopback hosts", v)
		case u.Fragment != "":
			add(p+field, "%q: a URL with a #fragment cannot be called", v)
		}
	}
	checkURL("notification_url", s.NotificationURL, s.Enabled)
	checkURL("lifecycle_url", s.LifecycleURL, false)
	if n := len(s.ClientState.Reveal()); n > MaxGraphClientState {
		add(p+"client_state", "is %d characters long; Graph accepts at most %d", n, MaxGraphClientState)
	}
	if s.RenewBefore <= 0 || time.Duration(s.RenewBefore) >= MaxGraphGroupSubscription {
		add(p+"renew_before", "must be positive and shorter than a subscription's lifetime (41760m, under 29 days), e.g. 232h")
	}
}

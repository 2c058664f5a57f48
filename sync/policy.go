package sync

import "github.com/groupsync/groupsync/config"

// applyPolicy moves what the policy forbids from the plan to Withheld.
// Policies only ever remove changes.
func applyPolicy(p *Plan, policy config.Policy) {
	switch policy {
	case config.PolicyAddOnly:
		for _, t := range p.Deletes {
			p.Withheld = append(p.Withheld, Withheld{Op: "delete", Tuple: t, Reason: ReasonPolicyAddOnly})
		}
		p.Deletes = nil
		p.Releases = nil // a group whose tuples stay stays owned
		sortBy(p.Withheld, func(w Withheld) Tuple { return w.Tuple })
	case config.PolicySync:
	}
}

package sync

import (
	"slices"
	"sort"
	"strings"
)

// UserLabels gives the readable name (UPN, else mail) of an OpenFGA user
// whose id is not one, for reports. It is held as two slices beside the
// mapping's table of user keys and an order to search them in: a report
// asks for the few users a plan changes, and a map of every user was
// megabytes at a large tenant.
type UserLabels struct {
	users  []string // OpenFGA users, "" where none
	labels []string // by the same position, "" where none
	order  []int32  // positions with a label, sorted by user
}

// newUserLabels keeps labels[i] as the label of users[i]; labels may be nil.
func newUserLabels(users, labels []string) UserLabels {
	if labels == nil {
		return UserLabels{}
	}
	l := UserLabels{users: users, labels: labels}
	for i := range labels {
		if labels[i] != "" && users[i] != "" {
			l.order = append(l.order, int32(i))
		}
	}
	slices.SortFunc(l.order, func(a, b int32) int { return strings.Compare(users[a], users[b]) })
	return l
}

// Len is how many users have a label.
func (l UserLabels) Len() int { return len(l.order) }

// Label returns user's label, if it has one.
func (l UserLabels) Label(user string) (string, bool) {
	k := sort.Search(len(l.order), func(k int) bool { return l.users[l.order[k]] >= user })
	if k < len(l.order) && l.users[l.order[k]] == user {
		return l.labels[l.order[k]], true
	}
	return "", false
}

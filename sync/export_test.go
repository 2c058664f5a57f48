package sync

import "strings"

// What the external tests (package sync_test, which may import fgatest)
// check directly.

// IDVerdict says why object or user cannot go to OpenFGA by groupsync's
// rules, or "" when both can.
func IDVerdict(object, user string) string {
	for _, s := range []string{object, user} {
		typ, id, _ := strings.Cut(s, ":")
		if typ == "" {
			return "no type"
		}
		if why := idProblem(id); why != "" {
			return why
		}
	}
	if why := objectLengthProblem(object); why != "" {
		return why
	}
	return userLengthProblem(user)
}

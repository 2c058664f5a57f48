package sync

// What the external tests (package sync_test, which may import fgatest)
// check directly.

// IDVerdict says why object or user cannot go to OpenFGA by groupsync's
// rules, or "" when both can.
func IDVerdict(object, user string) string {
	for _, s := range []string{object, user} {
		typ, id, _ := cutType(s)
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

func cutType(s string) (typ, id string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

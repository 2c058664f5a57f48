package sync

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OpenFGA v1.22.1 validates tuple fields in two places, and a name is only
// safe when it passes both:
//   - the API's proto rules: an object matches ^[^\s]{2,256}$ (a Go regexp,
//     so 256 characters, not bytes, and \s is ASCII whitespace only); a user
//     is at most 512 bytes;
//   - pkg/tuple's IsValidObject/IsValidUser: no control characters, no
//     space, no '#', exactly one ':' not at the start, an id after it.
//
// Strings must be valid UTF-8 to cross the API at all.
//
// groupsync is stricter in one respect, by choice: it refuses every Unicode
// whitespace character (U+00A0 no-break space, U+2003 em space, U+3000 ...)
// in an id, although OpenFGA accepts them. Such an id looks like it holds a
// space, so nobody can type it into a grant or a Check and get it right;
// mapping.group.replace_whitespace replaces them like ASCII spaces.
const (
	maxObjectRunes = 256
	maxUserBytes   = 512
)

// idProblem says why s cannot be the id part of an OpenFGA object or user
// ("type:<id>"), or "" when it can.
func idProblem(s string) string {
	switch {
	case s == "":
		return "it is empty"
	case s == "*":
		return `"*" is OpenFGA's wildcard`
	case !utf8.ValidString(s):
		return "it is not valid UTF-8"
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		return "it contains whitespace"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "it contains a control character"
	case strings.Contains(s, "#"):
		return "it contains '#'"
	case strings.Contains(s, ":"):
		return "it contains ':'"
	}
	return ""
}

// objectLengthProblem says why a whole object ("group:<id>") is too long or
// short for OpenFGA, counting characters as OpenFGA does, or "".
func objectLengthProblem(object string) string {
	switch n := utf8.RuneCountInString(object); {
	case n > maxObjectRunes:
		return fmt.Sprintf("%d characters, over OpenFGA's %d for an object", n, maxObjectRunes)
	case n < 2:
		return fmt.Sprintf("%d characters, under OpenFGA's 2 for an object", n)
	}
	return ""
}

// userLengthProblem says why a whole user ("user:<id>") is too long for
// OpenFGA, which counts a user's bytes, or "".
func userLengthProblem(user string) string {
	if n := len(user); n > maxUserBytes {
		return fmt.Sprintf("%d bytes, over OpenFGA's %d for a user", n, maxUserBytes)
	}
	return ""
}

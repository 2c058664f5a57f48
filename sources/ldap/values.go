package ldap

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"
)

// GUIDString renders a 16-byte Active Directory objectGUID in the canonical
// form Windows shows (and Entra ID's onPremisesImmutableId decodes to): the
// first three fields are little-endian on the wire.
func GUIDString(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("objectGUID is %d bytes, not 16", len(b))
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16]), nil
}

// SIDString renders a binary security identifier (objectSid) as
// S-1-5-21-...: revision, 48-bit big-endian authority, then little-endian
// 32-bit sub-authorities.
func SIDString(b []byte) (string, error) {
	if len(b) < 8 {
		return "", fmt.Errorf("objectSid is %d bytes, too short for a SID", len(b))
	}
	n := int(b[1])
	if len(b) != 8+4*n {
		return "", fmt.Errorf("objectSid is %d bytes, but says it has %d sub-authorities (%d bytes)", len(b), n, 8+4*n)
	}
	var auth uint64
	for _, c := range b[2:8] {
		auth = auth<<8 | uint64(c)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", b[0], auth)
	for i := range n {
		fmt.Fprintf(&sb, "-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return sb.String(), nil
}

// uacAccountDisable is the ACCOUNTDISABLE flag of userAccountControl.
const uacAccountDisable = 0x2

// accountDisabled reads Active Directory's userAccountControl.
func accountDisabled(uac string) (bool, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(uac), 10, 64)
	if err != nil {
		return false, fmt.Errorf("userAccountControl %q is not a number", uac)
	}
	return v&uacAccountDisable != 0, nil
}

// idValue renders an id attribute's value: objectGUID and objectSid from
// their binary forms, anything else as text (hex when it is not UTF-8).
func idValue(attr string, raw []byte) (string, error) {
	switch strings.ToLower(attr) {
	case "objectguid":
		return GUIDString(raw)
	case "objectsid":
		return SIDString(raw)
	}
	if !utf8.Valid(raw) {
		return hex.EncodeToString(raw), nil
	}
	return string(raw), nil
}

// dnKey is a DN in a form two spellings of the same DN share: attribute
// types and values case-folded, escapes resolved, spaces around separators
// dropped. Directories compare DN values case-insensitively for the naming
// attributes groups use (cn, ou, dc, uid).
type dnKey string

// parsedDN is a DN with its key and its RDNs' keys, for ancestry tests.
type parsedDN struct {
	key  dnKey
	rdns []string
}

func parseDN(s string) (parsedDN, error) {
	dn, err := goldap.ParseDN(s)
	if err != nil {
		return parsedDN{}, err
	}
	p := parsedDN{rdns: make([]string, len(dn.RDNs))}
	for i, rdn := range dn.RDNs {
		parts := make([]string, len(rdn.Attributes))
		for j, a := range rdn.Attributes {
			parts[j] = strings.ToLower(a.Type) + "=" + goldap.EscapeDN(strings.ToLower(a.Value))
		}
		// Multi-valued RDNs compare regardless of order.
		slices.Sort(parts)
		p.rdns[i] = strings.Join(parts, "+")
	}
	p.key = dnKey(strings.Join(p.rdns, ","))
	return p, nil
}

// within reports whether p is base or below it.
func (p parsedDN) within(base parsedDN) bool {
	if len(p.rdns) < len(base.rdns) {
		return false
	}
	off := len(p.rdns) - len(base.rdns)
	for i, r := range base.rdns {
		if p.rdns[off+i] != r {
			return false
		}
	}
	return true
}

// valueRange is the part of a multi-valued attribute that Active Directory
// returned under "member;range=lo-hi" (hi "*" for the last part).
type valueRange struct {
	lo   int
	hi   int // -1 for "*"
	vals []string
}

// rangedValues finds attr's values in an entry. AD returns at most
// MaxValRange (1500) values of a large attribute, named attr;range=0-1499;
// ranged is nil when the attribute came back whole.
func rangedValues(e *goldap.Entry, attr string) (whole []string, ranged *valueRange, err error) {
	prefix := strings.ToLower(attr) + ";range="
	for _, a := range e.Attributes {
		name := strings.ToLower(a.Name)
		switch {
		case name == strings.ToLower(attr):
			whole = append(whole, a.Values...)
		case strings.HasPrefix(name, prefix):
			r, perr := parseRange(name[len(prefix):])
			if perr != nil {
				return nil, nil, fmt.Errorf("entry %s: attribute %s: %v", e.DN, a.Name, perr)
			}
			r.vals = a.Values
			ranged = &r
		}
	}
	return whole, ranged, nil
}

func parseRange(s string) (valueRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return valueRange{}, fmt.Errorf("range %q is not lo-hi", s)
	}
	var r valueRange
	var err error
	if r.lo, err = strconv.Atoi(lo); err != nil || r.lo < 0 {
		return valueRange{}, fmt.Errorf("range %q has a bad start", s)
	}
	if hi == "*" {
		r.hi = -1
		return r, nil
	}
	if r.hi, err = strconv.Atoi(hi); err != nil || r.hi < r.lo-1 {
		return valueRange{}, fmt.Errorf("range %q has a bad end", s)
	}
	return r, nil
}

// fetchRange reads the part of attr starting at start, for one entry.
type fetchRange func(start int) (*goldap.Entry, error)

// allRangedValues follows AD's incremental retrieval: after range lo-hi,
// ask for attr;range=(hi+1)-* until the answer's range ends in "*". Every
// step must continue exactly where the previous one ended; anything else is
// an error rather than a guess, so a group is never read half.
func allRangedValues(dn, attr string, first *valueRange, fetch fetchRange) ([]string, int, error) {
	vals := append([]string(nil), first.vals...)
	r := first
	requests := 0
	for r.hi != -1 {
		next := r.hi + 1
		if len(r.vals) == 0 {
			return nil, requests, fmt.Errorf("group %s: %s;range=%d-%d came back empty before the last range", dn, attr, r.lo, r.hi)
		}
		e, err := fetch(next)
		requests++
		if err != nil {
			return nil, requests, fmt.Errorf("group %s: read %s;range=%d-*: %w", dn, attr, next, err)
		}
		whole, nr, err := rangedValues(e, attr)
		if err != nil {
			return nil, requests, err
		}
		if nr == nil {
			if len(whole) > 0 {
				return nil, requests, fmt.Errorf("group %s: asked for %s;range=%d-* and got the whole attribute back", dn, attr, next)
			}
			return nil, requests, fmt.Errorf("group %s: asked for %s;range=%d-* and got no values: the group changed while it was read; run again", dn, attr, next)
		}
		if nr.lo != next {
			return nil, requests, fmt.Errorf("group %s: asked for %s from value %d, got range %d-%s", dn, attr, next, nr.lo, rangeEnd(nr.hi))
		}
		vals = append(vals, nr.vals...)
		r = nr
		if requests > 1_000_000 {
			return nil, requests, fmt.Errorf("group %s: %s never reached its last range", dn, attr)
		}
	}
	return vals, requests, nil
}

func rangeEnd(hi int) string {
	if hi < 0 {
		return "*"
	}
	return strconv.Itoa(hi)
}

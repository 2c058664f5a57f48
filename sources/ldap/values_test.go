package ldap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

func TestGUIDString(t *testing.T) {
	b := []byte{0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x08, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	if got, err := GUIDString(b); err != nil || got != "01020304-0506-0708-090a-0b0c0d0e0f10" {
		t.Fatalf("%s %v", got, err)
	}
	if _, err := GUIDString(b[:15]); err == nil {
		t.Fatal("short GUID accepted")
	}
	if got, _ := idValue("objectGUID", b); got != "01020304-0506-0708-090a-0b0c0d0e0f10" {
		t.Fatal(got)
	}
}

func TestSIDString(t *testing.T) {
	admins := []byte{1, 2, 0, 0, 0, 0, 0, 5, 0x20, 0, 0, 0, 0x20, 2, 0, 0}
	if got, err := SIDString(admins); err != nil || got != "S-1-5-32-544" {
		t.Fatalf("%s %v", got, err)
	}
	domain := []byte{1, 5, 0, 0, 0, 0, 0, 5}
	for _, sub := range []uint32{21, 1004336348, 1177238915, 682003330, 512} {
		domain = binary.LittleEndian.AppendUint32(domain, sub)
	}
	if got, _ := idValue("objectSid", domain); got != "S-1-5-21-1004336348-1177238915-682003330-512" {
		t.Fatal(got)
	}
	if _, err := SIDString(domain[:20]); err == nil {
		t.Fatal("truncated SID accepted")
	}
	if got, _ := idValue("entryUUID", []byte("3f2a...")); got != "3f2a..." {
		t.Fatal(got)
	}
	if got, _ := idValue("someBinary", []byte{0xff, 0x00}); got != "ff00" {
		t.Fatal(got)
	}
}

func TestAccountDisabled(t *testing.T) {
	for uac, want := range map[string]bool{"512": false, "514": true, "66050": true, "66048": false, " 2 ": true} {
		if got, err := accountDisabled(uac); err != nil || got != want {
			t.Errorf("%s: %v %v", uac, got, err)
		}
	}
	if _, err := accountDisabled("normal"); err == nil {
		t.Error("non-number accepted")
	}
}

func TestDNKeysAndAncestry(t *testing.T) {
	a, _ := parseDN("CN=Alice Smith,OU=People,DC=Corp,DC=Example")
	b, _ := parseDN("cn=alice smith, ou=people,dc=corp,dc=example")
	base, _ := parseDN("dc=corp,dc=example")
	other, _ := parseDN("dc=example")
	tricky, _ := parseDN(`cn=x\,dc=corp\,dc=example,dc=other`)
	if a.key != b.key || !a.within(base) || !base.within(base) || !a.within(other) || tricky.within(base) || base.within(a) {
		t.Fatalf("%q %q %v %v", a.key, b.key, a.within(base), tricky.within(base))
	}
	m1, _ := parseDN("cn=a+uid=b,dc=x")
	m2, _ := parseDN("uid=b+cn=a,dc=x")
	if m1.key != m2.key {
		t.Fatalf("%q %q", m1.key, m2.key)
	}
	if got := stripUID("uid=a,dc=x#'0101'B"); got != "uid=a,dc=x" {
		t.Fatal(got)
	}
}

// adEntry answers like Active Directory with MaxValRange 1500: the values
// from start, at most 1500, named member;range=start-end (end * at the end).
func adEntry(all []string, start int) *goldap.Entry {
	end := min(start+1500, len(all))
	hi := strconv.Itoa(end - 1)
	if end == len(all) {
		hi = "*"
	}
	return &goldap.Entry{DN: "cn=big", Attributes: []*goldap.EntryAttribute{{Name: fmt.Sprintf("member;range=%d-%s", start, hi), Values: all[start:end]}}}
}

func TestRangedRetrievalReadsEveryValue(t *testing.T) {
	var all []string
	for i := range 3700 {
		all = append(all, fmt.Sprintf("cn=u%d,dc=x", i))
	}
	first := adEntry(all, 0)
	whole, r, err := rangedValues(first, "member")
	if err != nil || whole != nil || r == nil || r.lo != 0 || r.hi != 1499 {
		t.Fatalf("%v %+v %v", whole, r, err)
	}
	var asked []int
	got, n, err := allRangedValues("cn=big", "member", r, func(start int) (*goldap.Entry, error) {
		asked = append(asked, start)
		return adEntry(all, start), nil
	})
	if err != nil || n != 2 || !slices.Equal(got, all) || !slices.Equal(asked, []int{1500, 3000}) {
		t.Fatalf("n=%d asked=%v len=%d err=%v", n, asked, len(got), err)
	}
	// A group of exactly 1500 values: AD sends range=0-* at once.
	exact := adEntry(all[:1500], 0)
	if _, r, _ := rangedValues(exact, "member"); r == nil || r.hi != -1 {
		t.Fatalf("%+v", r)
	}
}

func TestRangedRetrievalRefusesToGuess(t *testing.T) {
	var all []string
	for i := range 2000 {
		all = append(all, fmt.Sprintf("cn=u%d,dc=x", i))
	}
	_, first, _ := rangedValues(adEntry(all, 0), "member")
	cases := map[string]struct {
		answer func(start int) (*goldap.Entry, error)
		want   string
	}{
		"gap": {func(int) (*goldap.Entry, error) { return adEntry(all, 1600), nil }, "asked for member from value 1500, got range 1600-*"},
		"whole": {func(int) (*goldap.Entry, error) {
			return &goldap.Entry{DN: "cn=big", Attributes: []*goldap.EntryAttribute{{Name: "member", Values: all}}}, nil
		}, "got the whole attribute back"},
		"shrunk": {func(int) (*goldap.Entry, error) { return &goldap.Entry{DN: "cn=big"}, nil }, "the group changed while it was read"},
		"error":  {func(int) (*goldap.Entry, error) { return nil, errors.New("boom") }, "read member;range=1500-*: boom"},
		"bad range": {func(int) (*goldap.Entry, error) {
			return &goldap.Entry{DN: "cn=big", Attributes: []*goldap.EntryAttribute{{Name: "member;range=1500-x", Values: all[1500:]}}}, nil
		}, `range "1500-x" has a bad end`},
	}
	for name, tc := range cases {
		_, _, err := allRangedValues("cn=big", "member", first, tc.answer)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEntryID(t *testing.T) {
	e := &goldap.Entry{DN: "cn=a,dc=x", Attributes: []*goldap.EntryAttribute{
		{Name: "objectClass", Values: []string{"top", "person"}, ByteValues: [][]byte{[]byte("top"), []byte("person")}},
		{Name: "empty", Values: []string{""}, ByteValues: [][]byte{{}}},
	}}
	for attr, want := range map[string]string{
		"objectClass": "has 2 values of objectClass; an id must be single-valued",
		"missing":     "has no missing, which source.ldap.users.id_attribute names as the id",
		"empty":       "has an empty empty",
	} {
		if _, err := entryID(e, attr, "users.id_attribute"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", attr, err)
		}
	}
	if id, err := entryID(e, "dn", "users.id_attribute"); err != nil || id != "cn=a,dc=x" {
		t.Errorf("dn: %s %v", id, err)
	}
}

func TestTransient(t *testing.T) {
	if !transient(goldap.NewError(goldap.ErrorNetwork, errors.New("x"))) || !transient(goldap.NewError(goldap.LDAPResultBusy, errors.New("x"))) ||
		transient(goldap.NewError(goldap.LDAPResultInvalidCredentials, errors.New("x"))) || transient(errors.New("plain")) {
		t.Fatal("classification")
	}
	if h := bindHint(goldap.NewError(goldap.LDAPResultInvalidCredentials, errors.New("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563"))); !strings.Contains(h, "locked out") {
		t.Fatal(h)
	}
}

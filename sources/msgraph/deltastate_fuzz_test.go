package msgraph

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/groupsync/groupsync/config"
	"github.com/groupsync/groupsync/sources/msgraph/graphtest"
	"github.com/groupsync/groupsync/state"
)

// seedState is a small tenant's state as encode writes it: GUID and other
// ids, kinds of member, complete and incomplete groups, user attributes,
// a mail that is the UPN and one that is not.
func seedState(t testing.TB) []byte {
	t.Helper()
	var ids idTable
	st := &deltaState{
		fingerprint:  "fp-0123",
		groupsLink:   "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=abc",
		usersLink:    "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=def",
		usersTracked: true,
		fullAt:       time.Unix(1_900_000_000, 0),
		linkAt:       time.Unix(1_900_000_100, 5),
		groups: map[string]*groupRec{
			gA: {name: "Team A", flags: gKnown | gComplete | gSecurity, users: ids.internAll([]string{u1, u2}), groups: []string{gB},
				others: []otherRef{{id: "device-1", kind: "device"}}},
			gB: {name: "Team B", flags: gKnown | gComplete | gUnified | gMail, users: ids.internAll([]string{u3})},
			gC: {name: "Distribution", flags: gKnown | gMail},
		},
		users: map[string]*userRec{
			u1: {upn: "u1@contoso.example", mail: "u1@contoso.example", flags: uEnabledKnown | uEnabled},
			u2: {upn: "u2@contoso.example", mail: "other@contoso.example", flags: uEnabledKnown | uGuest,
				attrs: map[string]string{"department": "Sales", "employeeId": "42"}},
			u3: {upn: "u3@contoso.example", flags: uEnabledKnown},
		},
	}
	st.ids = ids
	data, err := st.encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// corruptions are the seeds' damaged variants: truncations and bit flips
// across the header, the gzip stream and its trailer.
func corruptions(data []byte) [][]byte {
	var out [][]byte
	for _, n := range []int{0, 3, 5, 6, 15, len(data) / 2, len(data) - 8, len(data) - 1} {
		if n >= 0 && n < len(data) {
			out = append(out, bytes.Clone(data[:n]))
		}
	}
	for _, at := range []int{0, 4, 5, 9, 14, len(data) / 3, len(data) / 2, len(data) - 6, len(data) - 2} {
		if at >= 0 && at < len(data) {
			c := bytes.Clone(data)
			c[at] ^= 0x10
			out = append(out, c)
		}
	}
	return out
}

// FuzzDeltaStateDecode: decodeState errors or returns a state that encodes
// and decodes again to the same bytes; it never panics, and a state it
// returns without an error is whole (encode accepts it).
func FuzzDeltaStateDecode(f *testing.F) {
	data := seedState(f)
	f.Add(data)
	for _, c := range corruptions(data) {
		f.Add(c)
	}
	f.Fuzz(checkDecoded)
}

// checkDecoded is the property both fuzz targets check.
func checkDecoded(t *testing.T, in []byte) {
	st, err := decodeState(in)
	if err != nil {
		if st != nil {
			t.Fatalf("a state and an error (%v)", err)
		}
		return
	}
	again, err := st.encode()
	if err != nil {
		t.Fatalf("a decoded state does not encode: %v", err)
	}
	st2, err := decodeState(again)
	if err != nil {
		t.Fatalf("a re-encoded state does not decode: %v", err)
	}
	third, err := st2.encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, third) {
		t.Fatalf("re-encoding is not stable: %d then %d bytes", len(again), len(third))
	}
	if len(st2.groups) != len(st.groups) || len(st2.users) != len(st.users) {
		t.Fatalf("groups %d/%d, users %d/%d after a round trip", len(st.groups), len(st2.groups), len(st.users), len(st2.users))
	}
}

// wrapSections makes a state of raw (decompressed) sections: the header
// and a valid gzip stream, so that the fuzzer reaches the section parser
// past gzip's checksum.
func wrapSections(raw []byte) []byte {
	var out bytes.Buffer
	out.WriteString(stateMagic)
	out.WriteByte(stateVersion)
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	return out.Bytes()
}

// seedSections is the seed state's decompressed sections.
func seedSections(tb testing.TB) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(seedState(tb)[len(stateMagic)+1:]))
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// FuzzDeltaStateSections is FuzzDeltaStateDecode on the decompressed
// sections: the same property, with the damage inside a valid gzip stream.
func FuzzDeltaStateSections(f *testing.F) {
	raw := seedSections(f)
	f.Add(raw)
	for _, c := range corruptions(raw) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkDecoded(t, wrapSections(raw)) })
}

// A corrupt state in the store (a truncation or a bit flip of a real
// source's committed state) is read in full, says why, and the snapshot
// is the full read's; a damage decode cannot see (gzip's header) reads
// incrementally, and still gives the full read's snapshot.
func TestCorruptDeltaStateReadsInFull(t *testing.T) {
	ctx := context.Background()
	srv := graphtest.New(t, fixture())
	store := state.NewMemory()
	p := newPair(t, srv, graphConfig(srv), config.Default().Mapping, store)
	p.read(true)
	good, err := store.Load(ctx)
	if err != nil || good == nil {
		t.Fatalf("no state saved: %v", err)
	}
	full, incremental := 0, 0
	for i, bad := range corruptions(good) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if err := store.Save(ctx, bad); err != nil {
				t.Fatal(err)
			}
			p.t = t
			info := p.read(false) // compares with a full read
			_, derr := decodeState(bad)
			switch {
			case derr != nil:
				full++
				if info.Mode != "full" {
					t.Fatalf("a state decode refuses (%v) was used: %+v", derr, info)
				}
				p.fellBack("is corrupt")
			default:
				incremental++
				p.incremental()
			}
		})
	}
	if full == 0 {
		t.Fatal("no corruption was detected")
	}
	t.Logf("%d corruptions read in full, %d harmless (read incrementally, same snapshot)", full, incremental)
}

package main

import (
	"time"

	"github.com/groupsync/groupsync/sources/authentik"
	"github.com/groupsync/groupsync/sources/msgraph"
	gsync "github.com/groupsync/groupsync/sync"
)

// lastRead is how src read its last snapshot, false when it cannot say.
//
// Interim: the sources are being taught to fill SourceRead's batch items,
// retries, throttled answers and waiting themselves (and authentik and
// LDAP to be ReadDescribers at all). Until they do, the counts of the two
// sources that keep them come from their Stats, as before. Once every
// source fills SourceRead, this becomes the ReadDescriber assertion alone
// and this file's source imports go.
func lastRead(src gsync.Source) (gsync.SourceRead, bool) {
	var read gsync.SourceRead
	d, described := src.(gsync.ReadDescriber)
	if described {
		read = d.LastRead()
	}
	switch s := src.(type) {
	case *msgraph.Source:
		st := s.Stats()
		read.BatchItems, read.Retries, read.Throttled = st.BatchItems.Load(), st.Retries.Load(), st.Throttled.Load()
		read.Waited = time.Duration(st.WaitedNanos.Load())
		return read, true
	case *authentik.Source:
		st := s.Stats()
		read.Retries, read.Throttled = st.Retries.Load(), st.Throttled.Load()
		return read, true
	}
	return read, described
}

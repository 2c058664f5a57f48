package sync

// Exit codes of every groupsync command, kept in this one place and
// documented in README.md. They are stable once released.
const (
	ExitOK      = 0 // in sync, or everything applied
	ExitError   = 1 // any error: config, source, sink, or a tuple that failed to write
	ExitPending = 2 // plan: changes are pending
	ExitGuard   = 3 // a guard stopped the run before it wrote anything (plan: would stop apply)
	ExitBusy    = 4 // apply: another run of the same instance holds the lease; nothing was done
)

package main

// fuzzingSection closes docs/reliability.md: the fuzz targets, how CI and
// the long pass run them, and what they found. It is text, kept here so
// that the generated file stays whole.
const fuzzingSection = `
## Fuzzing

Go's native fuzzing over every parser that takes outside input. Each target's seeds run with
every ` + "`go test`" + ` (as ordinary tests); fuzzing proper runs through ` + "`scripts/fuzz.sh`" + `.

| package | target | input | property |
|---|---|---|---|
| config | FuzzParse | any config bytes, one environment variable | a config that validates, or an error naming a field or line; never a panic; never the variable's value (it may be a secret) in the error |
| sources/file | FuzzParse | any tenant file (YAML or JSON) | an error, or a tenant that validates and maps cleanly; never a panic |
| sync | FuzzGroupNames | two group names and the name options | the mapping writes only valid, unique OpenFGA ids and accounts for every group (written, or skipped with a reason); never a panic |
| sources/msgraph | FuzzDeltaStateDecode | a stored delta state (seeds: a small tenant's state, truncated and bit-flipped, in testdata/fuzz) | decode errors, or returns a state that encodes to bytes that decode and encode to the same bytes again; never a panic, never a state with an error |
| sources/msgraph | FuzzDeltaStateSections | the state's decompressed sections, wrapped in a valid gzip stream | the same, past gzip's checksum, where the section parser is |
| daemon | FuzzAuthentikPayload | an authentik notification body | a one-user or one-group slice of valid keys, or an error |
| daemon | FuzzSyncPath | a /sync/user/{key} or /sync/group/{id} path | one valid key, or an error |
| daemon | FuzzGraphNotifications | a Graph notification POST (body, query) | one of the handler's statuses, at most one event |
| daemon | FuzzGraphValidationToken | Graph's validation handshake query | 200 echoing the decoded token as text/plain (nosniff), or 400; nothing queued |
| daemon | FuzzGraphNotificationItems | one notification item's fields | a wrong clientState is ignored; a change queues its group's slice or a delta run; lifecycle events reauthorize, recreate or run as documented |
| daemon | FuzzBearer | the Authorization header and the token | accepted exactly for "Bearer <token>" with a token set |

Besides the fuzz targets, ` + "`TestCorruptDeltaStateReadsInFull`" + ` (sources/msgraph) stores truncated and
bit-flipped copies of a real committed state in a state.Store: each run reads in full and says
the state is corrupt (LastRead().Mode and Reason), or, for damage the decoder cannot see (a
byte of gzip's header), reads incrementally; either way the snapshot equals a full read's.

**CI** runs the short pass: ` + "`FUZZTIME=5s bash scripts/fuzz.sh`" + `, all 11 targets in about 80 s on 2
cores with a warm build cache (one instrumented test binary a package; targets found by each
package's ` + "`-test.list '^Fuzz'`" + `). **The long pass**: ` + "`FUZZTIME=10m bash scripts/fuzz.sh`" + ` (about two
hours), or one package longer, ` + "`FUZZ_PACKAGES=./sources/msgraph FUZZTIME=1h bash scripts/fuzz.sh`" + `.
The generated corpus stays in Go's cache; a failing input is written to the package's
testdata/fuzz/<Target>/: commit it with the fix, and it runs as a seed from then on.

**Found so far:**

- The delta-state decoder accepted an id table out of order inside a valid gzip stream: a member
  came back twice and the state re-encoded into one that no longer decoded ("member list not
  ascending"). Fixed: the decoder refuses an id table that is not strictly ascending (what encode
  writes). The input is kept as a seed (sources/msgraph/testdata/fuzz/FuzzDeltaStateSections).
- config's FuzzParse: an environment value that did not parse as a number was echoed in the error
  (` + "`GROUPSYNC_OPENFGA_MAX_RETRIES=\"<value>\" is not a whole number`" + `), which the target's
  property forbids (a misplaced secret would reach a log); input: empty config bytes, variable
  GROUPSYNC_OPENFGA_MAX_RETRIES. It took the fuzzer's grown corpus to reach. Fixed: config/env.go
  names the variable and never repeats its value.
- Nothing else, in the short passes and 1 to 2 minutes a target for the delta state and the
  webhooks.
`

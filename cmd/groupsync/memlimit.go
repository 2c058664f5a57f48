package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Go's GC lets the heap grow to twice what is live before it collects,
// whatever the container allows: a run whose live heap is 150 MB can be
// killed at a 256 MiB limit it never needed. With a soft limit the GC
// collects harder near it instead. GOMEMLIMIT, when set, is the
// operator's choice and wins.

// defaultGCPercent is the GC's target when GOGC is not set: the heap may
// grow half past what is live instead of doubling. A run spends its time
// waiting on Graph and OpenFGA, so the extra collections cost little time
// (BENCHMARKS.md measures both), while peak memory falls by a quarter.
const defaultGCPercent = 50

// setGCPercentDefault sets defaultGCPercent unless GOGC is set (the
// operator's choice wins) and returns the percent in force.
func setGCPercentDefault() int {
	if v := os.Getenv("GOGC"); v != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

// memoryLimitShare is the part of the container's memory limit the heap
// may use: the rest is the binary's pages, stacks and the runtime's own.
const memoryLimitShare = 0.85

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// setMemoryLimitFromCgroup sets the GC's soft memory limit to a share of
// the container's memory limit, unless GOMEMLIMIT is set or there is no
// limit. It returns the limit it set, or 0.
func setMemoryLimitFromCgroup(files []string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit := cgroupMemoryLimit(files)
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit returns the first limit files give, or 0 for none
// ("max", cgroup v1's huge "unlimited" value, no file).
func cgroupMemoryLimit(files []string) int64 {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<60 {
			return 0 // "max", or v1's page-rounded maximum: no limit
		}
		return v
	}
	return 0
}

// Command groupsync keeps OpenFGA in step with an identity provider's groups.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

func main() {
	// GROUPSYNC_CPUPROFILE=file writes a CPU profile of the run (benchmarks).
	if path := os.Getenv("GROUPSYNC_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	// GROUPSYNC_HEAPPROFILE=file keeps a heap profile near the peak.
	if path := os.Getenv("GROUPSYNC_HEAPPROFILE"); path != "" {
		go watchHeapPeak(path)
	}
	setGCPercentDefault()
	setMemoryLimitFromCgroup(cgroupMemoryFiles)
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	if os.Getenv("GROUPSYNC_MEMSTATS") != "" {
		printMemStats()
	}
	os.Exit(code)
}

// printMemStats writes the process's allocation totals to stderr, for the
// benchmark harness (GROUPSYNC_MEMSTATS=1).
func printMemStats() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	stats := map[string]uint64{
		"total_alloc_bytes": m.TotalAlloc, "mallocs": m.Mallocs, "heap_sys_bytes": m.HeapSys, "num_gc": uint64(m.NumGC),
	}
	// The kernel's view at exit: peak RSS, and how much of the RSS now is
	// the heap (anonymous) or the binary's pages (file).
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			name, value, ok := strings.Cut(line, ":")
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if ok && err == nil && (name == "VmHWM" || name == "RssAnon" || name == "RssFile") {
				stats[strings.ToLower(name)+"_kb"] = kb
			}
		}
	}
	b, _ := json.Marshal(stats)
	fmt.Fprintf(os.Stderr, "groupsync-memstats %s\n", b)
}

package main

import (
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// watchHeapPeak writes a heap profile to path each time the live heap (as
// the last GC measured it) grows 3% past its highest so far, so that
// at exit the file shows what the heap held at its peak
// (GROUPSYNC_HEAPPROFILE, for benchmarks). A heap profile is as of the last
// GC too, so both describe the same moment; watching the heap's size
// instead (garbage included) wrote profiles of GCs long past.
func watchHeapPeak(path string) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	for range time.Tick(50 * time.Millisecond) {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak+peak/32 {
			peak = v
			if f, err := os.Create(path); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
}

//go:build !unix

package bench

import "os"

// peakRSSMiB is not available here: Windows reports a process's peak
// working set only through APIs the standard library does not wrap.
func peakRSSMiB(*os.ProcessState) (float64, bool) { return 0, false }

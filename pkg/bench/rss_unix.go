//go:build unix

package bench

import (
	"os"
	"runtime"
	"syscall"
)

// peakRSSMiB is a finished child's peak resident set size.
func peakRSSMiB(ps *os.ProcessState) (float64, bool) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru.Maxrss <= 0 {
		return 0, false
	}
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20), true // bytes on macOS
	}
	return float64(ru.Maxrss) / 1024, true // KiB on Linux and the BSDs
}

package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// run runs cmd and measures its peak resident set size in MiB, by
// sampling the kernel's high-water mark (VmHWM in /proc/PID/status) until
// it exits. Not from the child's rusage: Linux folds into a child's
// ru_maxrss the peak of the memory it had before exec, and Go starts a
// child sharing its parent's, so every figure would be at least the
// bench's own peak. ok is false where /proc is not there to read.
func run(cmd *exec.Cmd) (mib float64, ok bool, err error) {
	if err := cmd.Start(); err != nil {
		return 0, false, err
	}
	path := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if kib, found := vmHWM(path); found {
			peak, ok = max(peak, kib), true
		}
		select {
		case err := <-done:
			return float64(peak) / 1024, ok, err
		case <-t.C:
		}
	}
}

// vmHWM reads the peak RSS, in KiB, from a /proc status file.
func vmHWM(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

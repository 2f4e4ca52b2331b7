package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestVmHWM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	os.WriteFile(path, []byte("Name:\tcertalloc\nVmPeak:\t  900000 kB\nVmHWM:\t   58712 kB\nVmRSS:\t   41000 kB\n"), 0o644)
	if kib, ok := vmHWM(path); !ok || kib != 58712 {
		t.Errorf("vmHWM = %d, %v; want 58712", kib, ok)
	}
	os.WriteFile(path, []byte("Name:\tzombie\nState:\tZ (zombie)\n"), 0o644)
	if _, ok := vmHWM(path); ok {
		t.Error("vmHWM found a peak in a status without one")
	}
}

package skiffproc

import (
	"os"
	"testing"
)

func TestReadMemoryOfThisProcess(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS || m.File > m.RSS {
		t.Errorf("RSS %.1f, peak %.1f, files %.1f MiB: not a process's memory", m.RSS, m.Peak, m.File)
	}
	// a page counts at most whole in PSS, shared ones by their share
	if _, err := os.Stat("/proc/self/smaps_rollup"); err == nil && (m.PSS <= 0 || m.PSS > m.RSS+1) {
		t.Errorf("PSS %.1f MiB against RSS %.1f", m.PSS, m.RSS)
	}
}

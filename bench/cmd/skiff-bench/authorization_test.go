package main

import (
	"os"
	"testing"
	"time"
)

func TestMedianIsTheMiddleOfTheRounds(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 9, 2}, 3},
	} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	if got := spread([]float64{3, 1.25, 2}, "%.1f"); got != "1.2–3.0" {
		t.Errorf("spread = %q", got)
	}
}

func TestCPUTimeCountsTheWorkOfEveryThread(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// two busy goroutines, on threads other than the main one: their time must show
	done := make(chan struct{})
	for range 2 {
		go func() {
			for x := 0; ; x++ {
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	defer close(done)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		now, err := cpuTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 50*time.Millisecond {
			return
		}
	}
	t.Fatal("the process's CPU time did not grow by 50 ms in 30 s of two busy goroutines")
}

package kubelet

import (
	"testing"
	"time"
)

func TestExpandFollowsUpstreamRules(t *testing.T) {
	vars := map[string]string{"A": "alpha", "B": "beta"}
	mapping := func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
	for in, want := range map[string]string{
		"$(A)":         "alpha",
		"$(A)-$(B)":    "alpha-beta",
		"$$(A)":        "$(A)",
		"$(MISSING)":   "$(MISSING)",
		"$(A":          "$(A",
		"$A":           "$A",
		"tail$":        "tail$",
		"a$$b":         "a$b",
		"$(A)$(B)$$$$": "alphabeta$$",
	} {
		if got := expand(in, mapping); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCrashLoopBackOffDoublesToItsCapAndResets(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBackOff(10*time.Second, 5*time.Minute)
	b.now = func() time.Time { return now }
	key := "uid/app"
	if in, _ := b.InBackOffSince(key, now); in {
		t.Fatal("in back-off before any failure")
	}
	var delays []time.Duration
	for range 7 {
		b.Next(key, now)
		delays = append(delays, b.Delay(key))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("delay %d = %v, want %v", i, delays[i], want[i])
		}
	}
	if in, left := b.InBackOffSince(key, now.Add(-time.Minute)); !in || left != 4*time.Minute {
		t.Errorf("a failure a minute ago with a 5 min delay: in=%v left=%v", in, left)
	}
	// a failure more than twice the cap after the last one starts over
	later := now.Add(11 * time.Minute)
	b.Next(key, later)
	if d := b.Delay(key); d != 10*time.Second {
		t.Errorf("delay after 11 quiet minutes = %v, want 10s", d)
	}
}

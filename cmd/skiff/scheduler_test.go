package main

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// A server's scheduler that misses its Lease's renewal (a loaded machine) must not stop the
// whole server: a new scheduler stands for the Lease and leads again once it is free.
func TestUpSchedulerStandsAgainAfterLosingItsLease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 15 s Lease to run out twice")
	}
	srv := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- upScheduler(srv.Config, 0, true)(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	leases := srv.Client.CoordinationV1().Leases("kube-system")
	var holder string
	leads := func(ctx context.Context) (bool, error) {
		l, err := leases.Get(ctx, "kube-scheduler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false, nil
		}
		holder = *l.Spec.HolderIdentity
		return holder != "" && holder != "thief", nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, leads); err != nil {
		t.Fatalf("the scheduler never led; holder %q", holder)
	}
	first := holder

	// another takes the Lease as if the scheduler had not renewed it in time
	steal := func(ctx context.Context) (bool, error) {
		l, err := leases.Get(ctx, "kube-scheduler", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.AcquireTime = ptr.To("thief"), &now, &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err == nil, nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, steal); err != nil {
		t.Fatal(err)
	}
	// the thief stops renewing: the scheduler, stood again, takes the Lease back
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, leads); err != nil {
		select {
		case err := <-done:
			t.Fatalf("the scheduler stopped after losing its lease: %v", err)
		default:
		}
		t.Fatalf("the scheduler never led again; holder %q", holder)
	}
	if !strings.HasPrefix(holder, strings.Split(first, "_")[0]+"_") {
		t.Errorf("the lease is held by %q, want this host's scheduler (first %q)", holder, first)
	}
	select {
	case err := <-done:
		t.Fatalf("upScheduler returned: %v", err)
	default:
	}
}

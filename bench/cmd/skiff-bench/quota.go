package main

import (
	"context"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/bench/benchpods"
)

// The quota scenario (--scenario quota) measures what ResourceQuota admission costs a pod
// create: the same pods (one container requesting 10m of CPU and 16Mi of memory) are created
// in the bench's namespace, which has no quota, and in a second one with a ResourceQuota on
// pods, requests.cpu and requests.memory, which every create must be checked against and
// charged to. Each of --rounds rounds creates --pods pods in each namespace, the order of the
// two alternating from round to round so that a drift of the machine falls on both alike;
// the cost is the median creates/s with the quota against the median without, and, where the
// server's process is known, the median CPU time (user and system) the server spent per
// create: on a machine whose cores others share, throughput swings from round to round with
// their load, while the server's own CPU per create hardly does.

// quotaHard is far above what the bench creates: the quota checks and charges, never refuses.
var quotaHard = corev1.ResourceList{
	corev1.ResourcePods:           resource.MustParse("1000000"),
	corev1.ResourceRequestsCPU:    resource.MustParse("100000"),
	corev1.ResourceRequestsMemory: resource.MustParse("100Ti"),
}

func (l *load) quotaScenario(ctx context.Context) error {
	quotaNS := l.ns + "-quota"
	if _, err := l.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: quotaNS}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the namespace with the quota: %w", err)
	}
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := deleteNamespace(cleanup, l.client, quotaNS); err != nil {
			fmt.Fprintf(l.progress, "warning: cleaning up namespace %s: %v\n", quotaNS, err)
		}
	}()
	// the ServiceAccount admission wants what the service account controller would make
	for _, ns := range []string{l.ns, quotaNS} {
		if _, err := l.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the default ServiceAccount of %s: %w", ns, err)
		}
	}
	quotas := l.client.CoreV1().ResourceQuotas(quotaNS)
	q, err := quotas.Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: corev1.ResourceQuotaSpec{Hard: quotaHard}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the quota: %w", err)
	}
	// what the quota controller would write first (the bench runs the API server alone):
	// nothing used yet, so that admission counts from there
	q.Status = corev1.ResourceQuotaStatus{Hard: quotaHard, Used: corev1.ResourceList{}}
	for name := range quotaHard {
		q.Status.Used[name] = resource.MustParse("0")
	}
	if _, err := quotas.UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("initialising the quota's status: %w", err)
	}

	rates, cpuPerCreate := map[bool][]float64{}, map[bool][]float64{}
	for round := range l.opts.rounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, withQuota := range order {
			ns, phase := l.ns, fmt.Sprintf("round %d: create pod, no quota", round+1)
			if withQuota {
				ns, phase = quotaNS, fmt.Sprintf("round %d: create pod, 1 quota", round+1)
			}
			cpuBefore, cpuErr := cpuTime(l.pid)
			r := l.createPods(ctx, phase, ns, fmt.Sprintf("r%d-", round))
			rates[withQuota] = append(rates[withQuota], r.OpsPerSec)
			if cpuAfter, err := cpuTime(l.pid); l.pid > 0 && cpuErr == nil && err == nil && r.Ops > 0 {
				perCreate := float64((cpuAfter - cpuBefore).Microseconds()) / 1000 / float64(r.Ops)
				cpuPerCreate[withQuota] = append(cpuPerCreate[withQuota], perCreate)
				l.res.Rows[len(l.res.Rows)-1].Note = fmt.Sprintf("server CPU %.2f ms/create", perCreate)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	used, err := quotas.Get(ctx, "bench", metav1.GetOptions{})
	if err != nil {
		return err
	}
	pods := used.Status.Used[corev1.ResourcePods]
	fmt.Fprintf(l.progress, "the quota counts %s pods used\n", pods.String())
	if want := int64(l.opts.rounds * l.opts.pods); pods.Value() != want {
		l.res.Problems = append(l.res.Problems, fmt.Sprintf("the quota counts %d pods used, not the %d created", pods.Value(), want))
	}
	without, with := median(rates[false]), median(rates[true])
	if without > 0 {
		l.res.Rows = append(l.res.Rows, row{Phase: "create pod, 1 quota / no quota", OpsPerSec: math.Round(with*10) / 10,
			Note: fmt.Sprintf("%.1f %% fewer creates/s than without a quota's median %.0f/s (medians of %d rounds each)", 100*(without-with)/without, without, l.opts.rounds)})
	}
	if without, with := median(cpuPerCreate[false]), median(cpuPerCreate[true]); without > 0 {
		l.res.Rows = append(l.res.Rows, row{Phase: "server CPU per create, 1 quota / no quota",
			Note: fmt.Sprintf("%.2f ms against %.2f ms: %+.1f %% (medians of %d rounds each)", with, without, 100*(with-without)/without, l.opts.rounds)})
	}
	return nil
}

// createPods creates --pods pods in ns, named prefix+index, and adds their row.
func (l *load) createPods(ctx context.Context, phase, ns, prefix string) row {
	pods := l.client.CoreV1().Pods(ns)
	lat, errs, wall := l.parallel(ctx, phase, l.opts.pods, func(ctx context.Context, i int) error {
		pod := benchpods.Small(prefix+podName(i), i)
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}
		_, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	r := newRow(phase, lat, errs.count(), wall)
	l.addRow(r, errs)
	return r
}

package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The listflood scenario (--scenario listflood) measures whether the API server's memory stays
// bounded, and a small user is still served, while many users LIST a big collection at once:
// --pods pods are created, then --clients clients, each its own client-go client on its own
// connection and impersonating one of --flood-users ordinary users (not system:masters, whom
// priority and fairness exempts), LIST all of them in a loop for --duration, once with
// resourceVersion unset (from etcd) and once with resourceVersion "0" (from the watch cache).
// Meanwhile another ordinary user GETs one pod every 100 ms. The listers read each body to its
// end and throw it away: decoding 500 LISTs at once would spend the machine's cores in the
// bench rather than in the server. Neither the listers nor the getter retry a 429 (client-go
// would, up to ten times): what is counted is what the server answered.

const (
	floodGroup   = "skiff-bench-listflood"
	floodGetter  = "skiff-bench-listflood-getter"
	getterPeriod = 100 * time.Millisecond
	rssPeriod    = 100 * time.Millisecond
)

func (l *load) listFloodScenario(ctx context.Context) error {
	created := l.creates(ctx)
	if len(created) == 0 {
		return fmt.Errorf("no pod could be created")
	}
	if err := l.allowFloodUsers(ctx); err != nil {
		return err
	}
	for _, rv := range []string{"", "0"} {
		if err := l.listFlood(ctx, rv, created[0]); err != nil {
			return err
		}
	}
	return nil
}

// allowFloodUsers lets the flood's users and the getter (all in floodGroup) read pods, and
// waits until RBAC's caches say so.
func (l *load) allowFloodUsers(ctx context.Context) error {
	rbac := l.client.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: floodGroup},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the flood's ClusterRole: %w", err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: floodGroup},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: floodGroup},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: floodGroup}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the flood's ClusterRoleBinding: %w", err)
	}
	getter, err := l.floodClient(floodGetter)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := getter.CoreV1().Pods(l.ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s may not list pods: %w", floodGetter, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// floodClient is a client of its own, on a connection of its own, impersonating user.
func (l *load) floodClient(user string) (kubernetes.Interface, error) {
	cfg := rest.CopyConfig(l.config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{floodGroup, "system:authenticated"}}
	// a dialer of its own keeps client-go from sharing one transport (and so one HTTP/2
	// connection) among all the clients, as separate users' programs would not
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	cfg.Dial = dialer.DialContext
	cfg.Timeout = 0
	return kubernetes.NewForConfig(cfg)
}

// listFlood runs one resourceVersion mode's flood and adds its rows.
func (l *load) listFlood(ctx context.Context, rv, getName string) error {
	mode := fmt.Sprintf("rv=%q", rv)
	users := max(1, l.opts.floodUsers)
	clients := make([]kubernetes.Interface, l.opts.clients)
	for i := range clients {
		c, err := l.floodClient(fmt.Sprintf("skiff-bench-listflood-%d", i%users))
		if err != nil {
			return err
		}
		clients[i] = c
	}
	getter, err := l.floodClient(floodGetter)
	if err != nil {
		return err
	}

	floodCtx, stop := context.WithTimeout(ctx, l.opts.duration)
	defer stop()
	start := time.Now()

	// the server's RSS, sampled: VmHWM is the peak since the server started, creates and
	// the other mode included
	var peakRSS atomic.Uint64
	var bg sync.WaitGroup
	if len(l.pids) > 0 {
		bg.Go(func() {
			t := time.NewTicker(rssPeriod)
			defer t.Stop()
			for {
				if rss, _, err := readRSS(l.pids); err == nil {
					if v := uint64(rss); v > peakRSS.Load() {
						peakRSS.Store(v)
					}
				}
				select {
				case <-floodCtx.Done():
					return
				case <-t.C:
				}
			}
		})
	}

	// the other user's GETs, one every 100 ms, each on its own so that a slow one does not
	// delay the next
	var getMu sync.Mutex
	var getLat []time.Duration
	var gets, get429 atomic.Int64
	getErrs := newErrorTally("get by another user during list flood " + mode)
	bg.Go(func() {
		t := time.NewTicker(getterPeriod)
		defer t.Stop()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for {
			select {
			case <-floodCtx.Done():
				return
			case <-t.C:
			}
			inflight.Go(func() {
				t0 := time.Now()
				err := getter.CoreV1().RESTClient().Get().Namespace(l.ns).Resource("pods").Name(getName).
					MaxRetries(0).Do(ctx).Error()
				gets.Add(1)
				switch {
				case err == nil:
					getMu.Lock()
					getLat = append(getLat, time.Since(t0))
					getMu.Unlock()
				case apierrors.IsTooManyRequests(err):
					get429.Add(1)
					getErrs.add(err)
				default:
					getErrs.add(err)
				}
			})
		}
	})

	var listMu sync.Mutex
	var listLat []time.Duration
	var list429 atomic.Int64
	var bytes atomic.Int64
	listErrs := newErrorTally("list flood " + mode)
	var listers sync.WaitGroup
	for _, c := range clients {
		listers.Go(func() {
			for floodCtx.Err() == nil {
				t0 := time.Now()
				req := c.CoreV1().RESTClient().Get().Namespace(l.ns).Resource("pods").MaxRetries(0)
				if rv != "" {
					req = req.Param("resourceVersion", rv)
				}
				n, err := readAll(floodCtx, req)
				if floodCtx.Err() != nil {
					return // cut by the end of the flood: neither a success nor a failure
				}
				switch {
				case err == nil:
					bytes.Add(n)
					listMu.Lock()
					listLat = append(listLat, time.Since(t0))
					listMu.Unlock()
				case apierrors.IsTooManyRequests(err):
					list429.Add(1)
					listErrs.add(err)
					time.Sleep(time.Second) // as a well-behaved client, which would wait out Retry-After
				default:
					listErrs.add(err)
					time.Sleep(time.Second)
				}
			}
		})
	}
	progressDone := make(chan struct{})
	bg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
			}
			listMu.Lock()
			n := len(listLat)
			listMu.Unlock()
			fmt.Fprintf(l.progress, "list flood %s: %d lists, %d × 429, %d gets (%d × 429), peak RSS %d MiB\n",
				mode, n, list429.Load(), gets.Load(), get429.Load(), peakRSS.Load())
		}
	})
	listers.Wait()
	wall := time.Since(start)
	close(progressDone)
	bg.Wait()

	lr := newRow(fmt.Sprintf("list flood %s, %d clients", mode, len(clients)), listLat, listErrs.count(), wall)
	lr.Note = fmt.Sprintf("%d × 429, %.0f MiB/s of bodies", list429.Load(), float64(bytes.Load())/(1<<20)/wall.Seconds())
	if len(l.pids) > 0 {
		lr.Note += fmt.Sprintf(", server peak RSS %d MiB", peakRSS.Load())
	}
	l.addRow(lr, listErrs)
	gr := newRow("  get by another user, every 100 ms", getLat, getErrs.count(), 0)
	ok := 0.0
	if n := gets.Load(); n > 0 {
		ok = 100 * float64(len(getLat)) / float64(n)
	}
	gr.Note = fmt.Sprintf("%.1f %% succeeded, %d × 429", math.Floor(ok*10)/10, get429.Load())
	l.addRow(gr, getErrs)
	return ctx.Err()
}

// readAll sends req and reads its body to the end, returning how many bytes it was.
func readAll(ctx context.Context, req *rest.Request) (int64, error) {
	body, err := req.Stream(ctx)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.Copy(io.Discard, body)
}

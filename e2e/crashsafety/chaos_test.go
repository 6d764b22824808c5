package crashsafety_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// The chaos test: a mixed client-go load (creates, updates, deletes, a watch) on a skiff up
// that is killed (kill -9: API server and etcd at once) at random points and started again,
// then a check of the history the clients saw against what the cluster holds:
//   - no acknowledged write is lost: every object's last acknowledged state is there, or a
//     later write that was sent but never answered (the kill cut it) is;
//   - resourceVersions only grow: each writer's acknowledged writes, one after another, carry
//     ever larger ones, and so do the watch's events;
//   - the watch sees every acknowledged write's event once, or is told 410 Gone (and lists
//     again) for the stretch it missed.
//
// SKIFF_CHAOS_KILLS sets how many kills (default 3; `make chaos` runs 20).

func chaosKills() int {
	if n, err := strconv.Atoi(os.Getenv("SKIFF_CHAOS_KILLS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// write is one write a client sent: acknowledged (with the resourceVersion it was answered
// with) or not (the answer never came).
type write struct {
	name    string
	value   string // "" for a delete
	deleted bool
	acked   bool
	rv      int64
}

// writerHistory is one writer's writes, in the order it sent them (one at a time).
type writerHistory struct {
	writes []write
}

// watchHistory is what the watch saw: events by object name and resourceVersion, and the
// stretches it covered without a 410 (from the resourceVersion it started at to the last one
// it saw).
type watchHistory struct {
	seen      map[string]int // "name@rv" → times seen
	order     []int64        // every event's resourceVersion, in arrival order, per stretch
	stretches [][2]int64
	gone      int // 410s
	problems  []string
}

const chaosNamespace = "default"

func TestAcknowledgedWritesSurviveKill9OfSkiffUp(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test starts skiff up again and again; skipped with -short")
	}
	if why := netnstest.Why(); why != "" {
		t.Skip(why)
	}
	c := newCluster(t)
	c.flags = []string{"--container-runtime-endpoint=fake"}
	c.start()

	load := startAPILoad(c.config)
	defer load.stop()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for k := range chaosKills() {
		time.Sleep(time.Duration(1000+rng.IntN(6000)) * time.Millisecond)
		t.Logf("kill %d of skiff up", k+1)
		c.kill()
		c.start()
	}
	// the load runs on a while against the last start, then stops
	time.Sleep(3 * time.Second)
	load.stop()
	figures := load.check(t, c.client)
	t.Logf("%d kills; %s", chaosKills(), figures)
}

// apiLoad is the mixed client-go load: writers of ConfigMaps of their own and a watch of them
// all, each keeping its history for check.
type apiLoad struct {
	histories []*writerHistory
	watch     *watchHistory
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// startAPILoad starts four writers and a watch on the cluster cfg reaches; they run, through
// whatever the cluster goes through, until stop.
func startAPILoad(cfg *rest.Config) *apiLoad {
	ctx, cancel := context.WithCancel(context.Background())
	const writers = 4
	l := &apiLoad{histories: make([]*writerHistory, writers), watch: &watchHistory{seen: map[string]int{}}, cancel: cancel}
	for i := range writers {
		l.histories[i] = &writerHistory{}
		l.wg.Go(func() { runWriter(ctx, cfg, i, l.histories[i]) })
	}
	l.wg.Go(func() { runWatch(ctx, cfg, l.watch) })
	return l
}

// stop ends the load and waits for its writers and watch to return; it may be called again.
func (l *apiLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// loadFigures are what a check counted.
type loadFigures struct {
	acked, unanswered, events, stretches, gone int
}

func (f loadFigures) String() string {
	return fmt.Sprintf("%d acknowledged writes, %d unanswered; the watch saw %d events in %d stretches, %d times 410 Gone",
		f.acked, f.unanswered, f.events, f.stretches, f.gone)
}

// check compares the stopped load's histories with what the cluster holds now: no
// acknowledged write lost, each writer's resourceVersions growing, the watch seeing each
// covered write once.
func (l *apiLoad) check(t *testing.T, client kubernetes.Interface) loadFigures {
	t.Helper()
	histories, wh := l.histories, l.watch
	list, err := client.CoreV1().ConfigMaps(chaosNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: "chaos=true"})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]corev1.ConfigMap{}
	for _, cm := range list.Items {
		stored[cm.Name] = cm
	}
	acked, unanswered := 0, 0
	for i, h := range histories {
		var last int64
		for _, w := range h.writes {
			if w.acked {
				acked++
			} else {
				unanswered++
			}
			if w.acked && w.rv != 0 {
				if w.rv <= last {
					t.Errorf("writer %d: %s acknowledged at resourceVersion %d after %d: not monotonic", i, w.name, w.rv, last)
				}
				last = w.rv
			}
		}
		for _, problem := range checkLastWrites(h, stored) {
			t.Errorf("writer %d: %s", i, problem)
		}
	}
	for _, p := range wh.problems {
		t.Error(p)
	}
	for name, n := range wh.seen {
		if n > 1 {
			t.Errorf("the watch saw %s %d times", name, n)
		}
	}
	missed := 0
	for _, h := range histories {
		for _, w := range h.writes {
			if !w.acked || w.deleted || !wh.covers(w.rv) {
				continue
			}
			if wh.seen[fmt.Sprintf("%s@%d", w.name, w.rv)] == 0 {
				missed++
				if missed <= 10 {
					t.Errorf("the watch covered resourceVersion %d but never saw %s's write there", w.rv, w.name)
				}
			}
		}
	}
	if acked == 0 {
		t.Error("no write was acknowledged: the load never ran")
	}
	return loadFigures{acked: acked, unanswered: unanswered, events: len(wh.seen), stretches: len(wh.stretches), gone: wh.gone}
}

// checkLastWrites compares each object's last acknowledged write, and the unanswered ones
// after it, with what is stored.
func checkLastWrites(h *writerHistory, stored map[string]corev1.ConfigMap) []string {
	var problems []string
	byName := map[string][]write{}
	var names []string
	for _, w := range h.writes {
		if _, ok := byName[w.name]; !ok {
			names = append(names, w.name)
		}
		byName[w.name] = append(byName[w.name], w)
	}
	for _, name := range names {
		ws := byName[name]
		lastAcked := -1
		for i, w := range ws {
			if w.acked {
				lastAcked = i
			}
		}
		// what may be stored: the last acknowledged state, or any unanswered write after it
		var possible []write
		if lastAcked >= 0 {
			possible = append(possible, ws[lastAcked])
		} else {
			possible = append(possible, write{name: name, deleted: true}) // never created
		}
		for _, w := range ws[lastAcked+1:] {
			possible = append(possible, w)
		}
		cm, exists := stored[name]
		ok := slices.ContainsFunc(possible, func(w write) bool {
			if w.deleted {
				return !exists
			}
			if !exists || cm.Data["v"] != w.value {
				return false
			}
			rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
			return !w.acked || rv == w.rv
		})
		if !ok {
			state := "absent"
			if exists {
				state = fmt.Sprintf("v=%q at resourceVersion %s", cm.Data["v"], cm.ResourceVersion)
			}
			problems = append(problems, fmt.Sprintf("%s is %s, but its writes were %+v", name, state, ws))
		}
	}
	return problems
}

// runWriter creates, updates and deletes ConfigMaps of its own, one write at a time, until ctx
// is done, recording each write and whether it was acknowledged.
func runWriter(ctx context.Context, cfg *rest.Config, id int, h *writerHistory) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 10 * time.Second
	client := kubernetes.NewForConfigOrDie(cfg)
	cms := client.CoreV1().ConfigMaps(chaosNamespace)
	rng := rand.New(rand.NewPCG(uint64(id), 11))
	var live []string
	for seq := 0; ctx.Err() == nil; seq++ {
		value := fmt.Sprintf("w%d-%d", id, seq)
		switch op := rng.IntN(10); {
		case op < 4 || len(live) == 0:
			name := fmt.Sprintf("chaos-w%d-%d", id, seq)
			cm, err := cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"chaos": "true"}},
				Data:       map[string]string{"v": value},
			}, metav1.CreateOptions{})
			w := write{name: name, value: value}
			if err == nil {
				w.acked, w.rv = true, rvOf(cm)
				live = append(live, name)
			} else if !apierrors.IsAlreadyExists(err) {
				live = append(live, name) // it may exist: later writes find out
			}
			h.writes = append(h.writes, w)
		case op < 8:
			name := live[rng.IntN(len(live))]
			cm, err := cms.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) {
					live = slices.DeleteFunc(live, func(n string) bool { return n == name })
				}
				break
			}
			cm.Data = map[string]string{"v": value}
			updated, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
			w := write{name: name, value: value}
			if err == nil {
				w.acked, w.rv = true, rvOf(updated)
			} else if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				break // refused: nothing was written
			}
			h.writes = append(h.writes, w)
		default:
			name := live[rng.IntN(len(live))]
			err := cms.Delete(ctx, name, metav1.DeleteOptions{})
			w := write{name: name, deleted: true, acked: err == nil || apierrors.IsNotFound(err)}
			h.writes = append(h.writes, w)
			if w.acked {
				live = slices.DeleteFunc(live, func(n string) bool { return n == name })
			}
		}
		if ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// a write cut by the end of the test is no acknowledged one either way
}

func rvOf(cm *corev1.ConfigMap) int64 {
	rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
	return rv
}

// runWatch watches the load's ConfigMaps until ctx is done: after a broken watch it resumes
// from the last resourceVersion it saw, after a 410 it lists again and starts a new stretch.
func runWatch(ctx context.Context, cfg *rest.Config, h *watchHistory) {
	cfg = rest.CopyConfig(cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	cms := client.CoreV1().ConfigMaps(chaosNamespace)
	var from int64
	list := func() bool {
		l, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "chaos=true"})
		if err != nil {
			return false
		}
		from, _ = strconv.ParseInt(l.ResourceVersion, 10, 64)
		h.stretches = append(h.stretches, [2]int64{from, from})
		return true
	}
	for ctx.Err() == nil && !list() {
		time.Sleep(200 * time.Millisecond)
	}
	for ctx.Err() == nil {
		w, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "chaos=true", ResourceVersion: strconv.FormatInt(from, 10)})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				h.gone++
				for ctx.Err() == nil && !list() {
					time.Sleep(200 * time.Millisecond)
				}
			} else {
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		gone := false
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				if status := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(status) || apierrors.IsGone(status) {
					gone = true
				}
				break
			}
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			rv := rvOf(cm)
			if rv <= from {
				h.problems = append(h.problems, fmt.Sprintf("watch event %s %s at resourceVersion %d after %d: not monotonic", ev.Type, cm.Name, rv, from))
			}
			from = rv
			h.seen[fmt.Sprintf("%s@%d", cm.Name, rv)]++
			h.stretches[len(h.stretches)-1][1] = rv
		}
		w.Stop()
		if gone {
			h.gone++
			for ctx.Err() == nil && !list() {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}

// covers says whether a stretch of the watch, without a 410 in it, spans rv.
func (h *watchHistory) covers(rv int64) bool {
	for _, s := range h.stretches {
		if rv > s[0] && rv <= s[1] {
			return true
		}
	}
	return false
}

func TestChaosCheckerFindsLostAndRolledBackWritesAndAllowsUnansweredOnes(t *testing.T) {
	h := &writerHistory{writes: []write{
		{name: "a", value: "1", acked: true, rv: 5},
		{name: "b", value: "1", acked: true, rv: 6},
		{name: "b", value: "2", acked: true, rv: 8},
		{name: "c", value: "1", acked: true, rv: 9},
		{name: "c", value: "2"}, // cut by a kill: may or may not be there
		{name: "d", value: "1", acked: true, rv: 10},
		{name: "d", deleted: true, acked: true},
	}}
	cm := func(name, v, rv string) corev1.ConfigMap {
		return corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv}, Data: map[string]string{"v": v}}
	}
	stored := map[string]corev1.ConfigMap{
		// a is lost
		"b": cm("b", "1", "6"), // rolled back to an older acknowledged write
		"c": cm("c", "2", "11"),
		"d": cm("d", "1", "10"), // its acknowledged delete is lost
	}
	problems := checkLastWrites(h, stored)
	for _, name := range []string{"a is absent", "b is v=\"1\"", "d is v=\"1\""} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, name) }) {
			t.Errorf("the checker did not report %q: %q", name, problems)
		}
	}
	if len(problems) != 3 {
		t.Errorf("the checker reported %d problems, want 3 (c's unanswered write may be there): %q", len(problems), problems)
	}
	wh := &watchHistory{stretches: [][2]int64{{4, 9}}}
	if !wh.covers(5) || wh.covers(4) || wh.covers(10) {
		t.Error("a stretch (4, 9] covers 5 and neither 4 nor 10")
	}
}

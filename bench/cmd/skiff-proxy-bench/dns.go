package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"

	"github.com/skiff-dev/skiff/bench/stats"
	"github.com/skiff-dev/skiff/dns"
)

type dnsResult struct {
	services, conns int
	queries, errors int
	perSecond       float64
	p50, p99        time.Duration
}

// dnsPhase asks the dns package's server, in this process on a loopback UDP socket, for the A
// records of random Services by their full names, from --dns-conns clients at once, for
// --duration.
func (b *bench) dnsPhase(ctx context.Context) error {
	if err := b.ensureNamespace(ctx); err != nil {
		return err
	}
	err := parallel(b.o.services, func(i int) error {
		_, err := b.client.CoreV1().Services(namespace).Create(ctx, service(serviceName(i)), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(b.client, 0)
	server, err := dns.New(factory.Core().V1().Services(), factory.Discovery().V1().EndpointSlices(), dns.Config{})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer factory.Shutdown()
	defer cancel()
	factory.Start(sctx.Done())
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- server.Serve(sctx, pc, nil) }()
	defer func() { cancel(); <-served }()
	addr := pc.LocalAddr().String()

	ask := func(conn *mdns.Conn, c *mdns.Client, i int) error {
		m := new(mdns.Msg)
		m.SetQuestion(fmt.Sprintf("%s.%s.svc.cluster.local.", serviceName(i), namespace), mdns.TypeA)
		r, _, err := c.ExchangeWithConn(m, conn)
		if err != nil {
			return err
		}
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			return fmt.Errorf("%s: rcode %s, %d answers", m.Question[0].Name, mdns.RcodeToString[r.Rcode], len(r.Answer))
		}
		return nil
	}
	// the server answers once its informers have synced
	probe := &mdns.Client{Net: "udp", Timeout: time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := probe.Dial(addr)
		if err == nil {
			err = ask(conn, probe, b.o.services-1)
			conn.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the DNS server never answered: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	fmt.Fprintf(b.progress, "dns: %d clients for %v\n", b.o.dnsConns, b.o.duration)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		wg        sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(b.o.duration)
	for w := range b.o.dnsConns {
		wg.Go(func() {
			c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
			conn, err := c.Dial(addr)
			if err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				return
			}
			defer conn.Close()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				t := time.Now()
				if err := ask(conn, c, rng.IntN(b.o.services)); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(latencies)
	b.dns = &dnsResult{
		services: b.o.services, conns: b.o.dnsConns, queries: len(latencies), errors: errs,
		perSecond: float64(len(latencies)) / wall.Seconds(),
		p50:       stats.Percentile(latencies, 50), p99: stats.Percentile(latencies, 99),
	}
	return nil
}

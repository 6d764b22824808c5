package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/ingress"
)

// ingressOptions are the flags of `skiff ingress-controller`.
type ingressOptions struct {
	kubeconfig       string
	hostnameOverride string
	httpAddress      string
	httpsAddress     string
	statusAddress    string
	publishAddress   string
	className        string
	// retryListen keeps trying to bind the ports instead of failing (inside `skiff up`,
	// where another server may hold 80 or 443); not a flag.
	retryListen bool
}

func newIngressCommand(_ *globalOptions) *cobra.Command {
	o := &ingressOptions{}
	cmd := &cobra.Command{
		Use:   "ingress-controller",
		Short: "Serve the HTTP(S) rules of Ingresses on this node's ports 80 and 443",
		Long: `Own the IngressClass "skiff" (controller skiff.dev/ingress; made, marked default when no
other class is, if it is missing) and serve the Ingresses of that class (and those naming no
class while it is the default) on --http-address and --https-address: by host (exact or
*.wildcard) and path (Exact, Prefix; ImplementationSpecific is Prefix), longest path first,
to a ready endpoint of the backend Service, round-robin, with spec.tls Secrets' certificates
picked by SNI. The node's address goes into each Ingress's status.loadBalancer.
/healthz and /metrics are served on --status-address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			cfg, err := loadKubeconfig(o.kubeconfig)
			if err != nil {
				return err
			}
			return runIngress(ctx, cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server with; default $KUBECONFIG or ~/.kube/config")
	f.StringVar(&o.hostnameOverride, "hostname-override", "", "this node's name, as its kubelet registers it; default the host name")
	f.StringVar(&o.httpAddress, "http-address", ":80", "address to serve HTTP on; empty serves none")
	f.StringVar(&o.httpsAddress, "https-address", ":443", "address to serve HTTPS on; empty serves none")
	f.StringVar(&o.statusAddress, "status-address", "127.0.0.1:10254", "address of /healthz and /metrics; empty serves none")
	f.StringVar(&o.publishAddress, "publish-address", "", "address written into the Ingresses' status; default the node's ExternalIP, else its InternalIP")
	f.StringVar(&o.className, "ingress-class", ingress.ClassName, "name of the IngressClass this controller owns")
	return cmd
}

// runIngress runs the ingress controller until ctx is done.
func runIngress(ctx context.Context, cfg *rest.Config, o *ingressOptions) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	node := nodeHostname(o.hostnameOverride)
	factories := ingress.NewFactories(client, node)
	c, err := ingress.NewFromFactories(client, factories, ingress.Config{NodeName: node, PublishAddress: o.publishAddress, ClassName: o.className})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.statusAddress != "" {
		if err := serveIngressStatus(ctx, c, o.statusAddress); err != nil {
			return err
		}
	}
	factories.Start(ctx.Done())
	defer factories.Shutdown()
	ran := make(chan struct{})
	go func() { defer close(ran); c.Run(ctx) }()
	defer func() { <-ran }()
	defer cancel()
	for {
		err := serveIngressPorts(ctx, c, o)
		if ctx.Err() != nil {
			return nil
		}
		if !o.retryListen {
			return err
		}
		slog.Warn("the ingress controller cannot serve its ports; trying again in 30s", "http", o.httpAddress, "https", o.httpsAddress, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(30 * time.Second):
		}
	}
}

// serveIngressPorts listens on the HTTP and HTTPS addresses and serves them until ctx is done
// or one fails.
func serveIngressPorts(ctx context.Context, c *ingress.Controller, o *ingressOptions) error {
	var plain, secure net.Listener
	var err error
	if o.httpAddress != "" {
		if plain, err = net.Listen("tcp", o.httpAddress); err != nil {
			return err
		}
	}
	if o.httpsAddress != "" {
		if secure, err = net.Listen("tcp", o.httpsAddress); err != nil {
			if plain != nil {
				plain.Close()
			}
			return err
		}
	}
	slog.Info("ingress controller serving", "http", o.httpAddress, "https", o.httpsAddress)
	return c.Serve(ctx, plain, secure)
}

// serveIngressStatus serves /healthz (200 once the routes are built from the API's objects,
// 503 before) and /metrics.
func serveIngressStatus(ctx context.Context, c *ingress.Controller, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.Healthy() {
			http.Error(w, "routes not built yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(c.Metrics().Registry, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("ingress status endpoint stopped", "address", addr, "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	return nil
}

// upIngress is the ingress controller as a part of `skiff up`: this host's node on ports 80
// and 443, waiting for them rather than failing while another server holds one, without a
// status port (several clusters may run on one machine in tests).
func upIngress(cfg *rest.Config) func(context.Context) error {
	return func(ctx context.Context) error {
		return runIngress(ctx, cfg, &ingressOptions{httpAddress: ":80", httpsAddress: ":443", className: ingress.ClassName, retryListen: true})
	}
}

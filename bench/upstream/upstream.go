// Package upstream runs upstream Kubernetes' control plane beside skiff's for the benches:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.37.2, and kwok's simulated
// nodes, each a child process on loopback ports in a directory of its own. The binaries come
// from build.sh in this directory; etcd is the same etcd 3.7.3 skiff embeds, served by the
// bench binary itself started again as `<bench> serve-etcd DIR URL`.
//
// It is for bench/ only, and it never reaches a network: everything listens on 127.0.0.1.
package upstream

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/apiserver/certs"
	"github.com/skiff-dev/skiff/bench/skiffproc"
)

// DefaultBinDir is where build.sh puts the binaries.
func DefaultBinDir() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "upstream-bench", "bin")
}

// etcdCommand is the argument that makes a bench binary serve etcd instead of benching.
const etcdCommand = "serve-etcd"

// ServeEtcdIfAsked serves etcd and exits, when this process was started by Start as
// `<bench> serve-etcd DIR CLIENT-URL`; otherwise it returns at once. Benches call it first.
func ServeEtcdIfAsked() {
	if len(os.Args) != 4 || os.Args[1] != etcdCommand {
		return
	}
	if err := serveEtcd(os.Args[2], os.Args[3]); err != nil {
		log.Fatalf("etcd: %v", err)
	}
	os.Exit(0)
}

func serveEtcd(dir, clientURL string) error {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "warn"
	peerPort, err := skiffproc.FreePort()
	if err != nil {
		return err
	}
	if err := setURLs(cfg, clientURL, "http://127.0.0.1:"+strconv.Itoa(peerPort)); err != nil {
		return err
	}
	// etcd's defaults otherwise, as skiff embeds it (the API servers compact it themselves)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		return errors.New("not ready within a minute")
	}
	fmt.Println("etcd ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case err := <-e.Err():
		return err
	}
}

// setURLs makes cfg a one-member cluster listening on plain HTTP at clientURL and peerURL.
func setURLs(cfg *embed.Config, clientURL, peerURL string) error {
	client, err := url.Parse(clientURL)
	if err != nil {
		return err
	}
	peer, err := url.Parse(peerURL)
	if err != nil {
		return err
	}
	cfg.Name = "upstream-bench"
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenMetricsUrls = nil
	return nil
}

// Options choose the parts to run.
type Options struct {
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
	BinDir string
	// Dir is an empty directory for the state and the certificates.
	Dir string
	// ControllerManager, Scheduler and Kwok ask for those parts besides etcd and the API server.
	ControllerManager, Scheduler, Kwok bool
	// Log receives the components' output, each line prefixed with its name.
	Log io.Writer
}

// ControlPlane is upstream's control plane running.
type ControlPlane struct {
	// Kubeconfig is an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Processes are the parts in the order they started.
	Processes []skiffproc.Named
}

// Start runs the parts o asks for and returns once the API server is ready. On an error it
// stops what it started.
func Start(ctx context.Context, o Options) (_ *ControlPlane, err error) {
	for _, b := range o.binaries() {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("no upstream %s in %s: run bench/upstream/build.sh", b, o.BinDir)
		}
	}
	cp := &ControlPlane{}
	defer func() {
		if err != nil {
			err = errors.Join(err, cp.Stop(o.Log))
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	etcdPort, err := skiffproc.FreePort()
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	etcd, err := skiffproc.Run("etcd", self, []string{etcdCommand, filepath.Join(o.Dir, "etcd"), etcdURL}, o.Log)
	if err != nil {
		return nil, err
	}
	cp.add("etcd", etcd)
	if err := etcd.WaitReady(ctx, time.Minute); err != nil {
		return nil, err
	}

	// the PKI skiff makes has every file kube-apiserver asks for, named as kubeadm names them
	pki, err := certs.Ensure(filepath.Join(o.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	port, err := skiffproc.FreePort()
	if err != nil {
		return nil, err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	cp.Kubeconfig = filepath.Join(o.Dir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(cp.Kubeconfig, server); err != nil {
		return nil, err
	}
	apiserver, err := skiffproc.Run("kube-apiserver", filepath.Join(o.BinDir, "kube-apiserver"), []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + pki.ServingCertFile, "--tls-private-key-file=" + pki.ServingKeyFile,
		"--client-ca-file=" + pki.CACertFile,
		"--service-account-key-file=" + pki.ServiceAccountKeyFile,
		"--service-account-signing-key-file=" + pki.ServiceAccountKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
	}, o.Log)
	if err != nil {
		return nil, err
	}
	cp.add("kube-apiserver", apiserver)
	if err := waitReadyz(ctx, cp.Kubeconfig, apiserver); err != nil {
		return nil, err
	}

	// the controllers and the scheduler without a client-side limit, as kwokctl runs them for
	// simulated clusters (skiff's scheduler has none by default; its controller manager allows
	// 200 requests/s in bursts of 400, which the benches keep)
	unlimited := []string{"--kube-api-qps=5000", "--kube-api-burst=10000", "--leader-elect=false"}
	if o.ControllerManager {
		kc := filepath.Join(o.Dir, "controller-manager.kubeconfig")
		if err := pki.WriteUserKubeconfig(kc, server, "system:kube-controller-manager"); err != nil {
			return nil, err
		}
		p, err := skiffproc.Run("kube-controller-manager", filepath.Join(o.BinDir, "kube-controller-manager"), append([]string{
			"--kubeconfig=" + kc, "--secure-port=0",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + pki.ServiceAccountKeyFile,
			"--root-ca-file=" + pki.CACertFile,
			"--cluster-signing-cert-file=" + pki.CACertFile, "--cluster-signing-key-file=" + pki.CAKeyFile,
		}, unlimited...), o.Log)
		if err != nil {
			return nil, err
		}
		cp.add("kube-controller-manager", p)
	}
	if o.Scheduler {
		kc := filepath.Join(o.Dir, "scheduler.kubeconfig")
		if err := pki.WriteUserKubeconfig(kc, server, "system:kube-scheduler"); err != nil {
			return nil, err
		}
		p, err := skiffproc.Run("kube-scheduler", filepath.Join(o.BinDir, "kube-scheduler"),
			append([]string{"--kubeconfig=" + kc, "--secure-port=0"}, unlimited...), o.Log)
		if err != nil {
			return nil, err
		}
		cp.add("kube-scheduler", p)
	}
	if o.Kwok {
		p, err := StartKwok(o.BinDir, cp.Kubeconfig, o.Log)
		if err != nil {
			return nil, err
		}
		cp.add("kwok", p)
	}
	return cp, nil
}

// StartKwok runs kwok against the API server of kubeconfig (upstream's or skiff's), keeping
// every Node with kwok's own default stages, as kwokctl configures them (build.sh gathers them
// into one file): nodes become Ready and keep a lease, pods run at once. One stage of ours
// comes with them, on both sides: a pod the node lifecycle controller marked not ready is made
// ready again once its node is heard, as a kubelet does (kwok-pod-ready-again.yaml).
func StartKwok(binDir, kubeconfig string, log io.Writer) (*skiffproc.Process, error) {
	for _, f := range []string{"kwok", "kwok-stages.yaml"} {
		if _, err := os.Stat(filepath.Join(binDir, f)); err != nil {
			return nil, fmt.Errorf("no %s in %s: run bench/upstream/build.sh", f, binDir)
		}
	}
	readyAgain := filepath.Join(binDir, "kwok-pod-ready-again.yaml")
	if err := os.WriteFile(readyAgain, podReadyAgainStage, 0o644); err != nil {
		return nil, err
	}
	return skiffproc.Run("kwok", filepath.Join(binDir, "kwok"), []string{
		"--kubeconfig=" + kubeconfig,
		"--config=" + filepath.Join(binDir, "kwok-stages.yaml"),
		"--config=" + readyAgain,
		"--manage-all-nodes=true",
		"--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
		"--node-lease-duration-seconds=40",
		"--server-address=", "--node-port=0",
	}, log)
}

//go:embed kwok-pod-ready-again.yaml
var podReadyAgainStage []byte

func (o Options) binaries() []string {
	b := []string{"kube-apiserver"}
	if o.ControllerManager {
		b = append(b, "kube-controller-manager")
	}
	if o.Scheduler {
		b = append(b, "kube-scheduler")
	}
	return b
}

func (cp *ControlPlane) add(name string, p *skiffproc.Process) {
	cp.Processes = append(cp.Processes, skiffproc.Named{Name: name, P: p})
}

// Stop stops the parts in the reverse order of their start.
func (cp *ControlPlane) Stop(progress io.Writer) error {
	var errs []error
	for i := len(cp.Processes) - 1; i >= 0; i-- {
		errs = append(errs, cp.Processes[i].P.Stop(progress))
	}
	cp.Processes = nil
	return errors.Join(errs...)
}

// waitReadyz polls the API server's /readyz until it answers 200.
func waitReadyz(ctx context.Context, kubeconfig string, p *skiffproc.Process) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var status int
		client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		if status == http.StatusOK {
			return nil
		}
		select {
		case <-p.Exited():
			return errors.New("kube-apiserver exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver was not ready within 2 minutes (last /readyz: %d)", status)
		}
	}
}

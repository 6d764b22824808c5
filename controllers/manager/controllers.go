package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/admissionpolicystatus"
	"github.com/skiff-dev/skiff/controllers/bootstrapsigner"
	"github.com/skiff-dev/skiff/controllers/clusterroleaggregation"
	"github.com/skiff-dev/skiff/controllers/cronjob"
	"github.com/skiff-dev/skiff/controllers/csrapproving"
	"github.com/skiff-dev/skiff/controllers/csrcleaner"
	"github.com/skiff-dev/skiff/controllers/csrsigning"
	"github.com/skiff-dev/skiff/controllers/daemonset"
	"github.com/skiff-dev/skiff/controllers/deployment"
	"github.com/skiff-dev/skiff/controllers/disruption"
	"github.com/skiff-dev/skiff/controllers/endpointslice"
	"github.com/skiff-dev/skiff/controllers/endpointslicemirroring"
	"github.com/skiff-dev/skiff/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/controllers/job"
	"github.com/skiff-dev/skiff/controllers/namespace"
	"github.com/skiff-dev/skiff/controllers/nodeipam"
	"github.com/skiff-dev/skiff/controllers/nodelifecycle"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
	"github.com/skiff-dev/skiff/controllers/podautoscaler"
	"github.com/skiff-dev/skiff/controllers/podgc"
	"github.com/skiff-dev/skiff/controllers/replicaset"
	"github.com/skiff-dev/skiff/controllers/resourcequota"
	"github.com/skiff-dev/skiff/controllers/rootcacertpublisher"
	"github.com/skiff-dev/skiff/controllers/serviceaccount"
	"github.com/skiff-dev/skiff/controllers/servicecidr"
	"github.com/skiff-dev/skiff/controllers/servicelb"
	"github.com/skiff-dev/skiff/controllers/statefulset"
	"github.com/skiff-dev/skiff/controllers/tainteviction"
	"github.com/skiff-dev/skiff/controllers/tokencleaner"
	"github.com/skiff-dev/skiff/controllers/ttlafterfinished"
	"github.com/skiff-dev/skiff/internal/trim"
)

// errSkipController: the controller cannot run with these options and is left out.
var errSkipController = errors.New("not configured")

// descriptor is one controller the manager can run, named as upstream's kube-controller-manager
// names it (with its older short name as an alias).
type descriptor struct {
	name    string
	aliases []string
	// workers is how many keys it syncs at once (upstream's --concurrent-*-syncs).
	workers int
	// serviceAccount is the account in kube-system it runs as with service-account
	// credentials, upstream's name for it (the default policy binds it to
	// system:controller:<serviceAccount>).
	serviceAccount string
	build          func(b *builder) (func(context.Context, int), error)
}

// descriptors is every controller, in the order they start.
var descriptors = []descriptor{
	{name: "replicaset-controller", serviceAccount: "replicaset-controller", aliases: []string{"replicaset"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := replicaset.New(b.informers.Apps().V1().ReplicaSets(), b.informers.Core().V1().Pods(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "replicationcontroller-controller", serviceAccount: "replication-controller", aliases: []string{"replicationcontroller"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := replicaset.NewForReplicationControllers(b.informers.Core().V1().ReplicationControllers(), b.informers.Core().V1().Pods(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "job-controller", serviceAccount: "job-controller", aliases: []string{"job"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := job.New(b.informers.Batch().V1().Jobs(), b.informers.Core().V1().Pods(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "cronjob-controller", serviceAccount: "cronjob-controller", aliases: []string{"cronjob"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := cronjob.New(b.informers.Batch().V1().CronJobs(), b.informers.Batch().V1().Jobs(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "ttl-after-finished-controller", serviceAccount: "ttl-after-finished-controller", aliases: []string{"ttl-after-finished"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := ttlafterfinished.New(b.informers.Batch().V1().Jobs(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "deployment-controller", serviceAccount: "deployment-controller", aliases: []string{"deployment"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := deployment.New(b.informers.Apps().V1().Deployments(), b.informers.Apps().V1().ReplicaSets(), b.informers.Core().V1().Pods(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "daemonset-controller", serviceAccount: "daemon-set-controller", aliases: []string{"daemonset"}, workers: 2, build: func(b *builder) (func(context.Context, int), error) {
		c, err := daemonset.New(b.informers.Apps().V1().DaemonSets(), b.informers.Apps().V1().ControllerRevisions(),
			b.informers.Core().V1().Pods(), b.informers.Core().V1().Nodes(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "statefulset-controller", serviceAccount: "statefulset-controller", aliases: []string{"statefulset"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := statefulset.New(b.informers.Apps().V1().StatefulSets(), b.informers.Apps().V1().ControllerRevisions(),
			b.informers.Core().V1().Pods(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "endpointslice-controller", serviceAccount: "endpointslice-controller", aliases: []string{"endpointslice"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := endpointslice.New(b.informers.Core().V1().Pods(), b.informers.Core().V1().Services(), b.informers.Core().V1().Nodes(),
			b.informers.Discovery().V1().EndpointSlices(), b.informers.Core().V1().Endpoints(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "endpointslice-mirroring-controller", serviceAccount: "endpointslicemirroring-controller", aliases: []string{"endpointslicemirroring"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := endpointslicemirroring.New(b.informers.Core().V1().Services(), b.informers.Core().V1().Endpoints(),
			b.informers.Discovery().V1().EndpointSlices(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "service-lb-controller", serviceAccount: "service-controller", aliases: []string{"servicelb"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		c, err := servicelb.New(b.informers.Core().V1().Services(), b.informers.Core().V1().Nodes(),
			b.informers.Discovery().V1().EndpointSlices(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "garbage-collector-controller", serviceAccount: "generic-garbage-collector", aliases: []string{"garbagecollector"}, workers: 20, build: func(b *builder) (func(context.Context, int), error) {
		source, err := b.gcInformerSource()
		if err != nil {
			return nil, err
		}
		return garbagecollector.New(source, b.dynamic, memory.NewMemCacheClient(b.client.Discovery()), b.reporting).Run, nil
	}},
	{name: "namespace-controller", serviceAccount: "namespace-controller", aliases: []string{"namespace"}, workers: 10, build: func(b *builder) (func(context.Context, int), error) {
		c, err := namespace.New(b.informers.Core().V1().Namespaces(), b.client, b.dynamic, b.client.Discovery().ServerPreferredNamespacedResources, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "serviceaccount-controller", serviceAccount: "service-account-controller", aliases: []string{"serviceaccount"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		c, err := serviceaccount.New(b.informers.Core().V1().ServiceAccounts(), b.informers.Core().V1().Namespaces(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "root-ca-certificate-publisher-controller", serviceAccount: "root-ca-cert-publisher", aliases: []string{"root-ca-cert-publisher"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		if len(b.options.RootCA) == 0 {
			return nil, fmt.Errorf("%w: no --root-ca-file", errSkipController)
		}
		c, err := rootcacertpublisher.New(b.informers.Core().V1().ConfigMaps(), b.informers.Core().V1().Namespaces(), b.client, b.options.RootCA, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: servicecidr.Name, serviceAccount: "service-cidrs-controller", workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := servicecidr.New(b.informers.Networking().V1().ServiceCIDRs(), b.informers.Networking().V1().IPAddresses(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "pod-garbage-collector-controller", serviceAccount: "pod-garbage-collector", aliases: []string{"podgc"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		return podgc.New(b.informers.Core().V1().Pods(), b.informers.Core().V1().Nodes(), b.client, b.options.TerminatedPodGCThreshold, b.reporting).Run, nil
	}},
	{name: "node-ipam-controller", serviceAccount: "node-controller", aliases: []string{"nodeipam"}, workers: 4, build: func(b *builder) (func(context.Context, int), error) {
		cidrs, err := nodeipam.ParseClusterCIDRs(b.options.ClusterCIDR)
		if err != nil {
			return nil, err
		}
		masks := make([]int, len(cidrs))
		for i, p := range cidrs {
			masks[i] = nodeipam.DefaultMaskSize(p)
			if b.options.NodeCIDRMaskSize != 0 && len(cidrs) == 1 {
				masks[i] = b.options.NodeCIDRMaskSize
			}
		}
		c, err := nodeipam.New(b.informers.Core().V1().Nodes(), b.client, cidrs, masks, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "node-lifecycle-controller", serviceAccount: "node-controller", aliases: []string{"nodelifecycle"}, workers: 4, build: func(b *builder) (func(context.Context, int), error) {
		c, err := nodelifecycle.New(b.informers.Core().V1().Nodes(), b.informers.Coordination().V1().Leases(), b.informers.Core().V1().Pods(), b.client,
			nodelifecycle.Options{MonitorGracePeriod: b.options.NodeMonitorGracePeriod}, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "persistentvolume-binder-controller", serviceAccount: "persistent-volume-binder", aliases: []string{"persistentvolume-binder", "pvc-protection", "pv-protection"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		c, err := persistentvolume.New(b.informers.Core().V1().PersistentVolumes(), b.informers.Core().V1().PersistentVolumeClaims(),
			b.informers.Storage().V1().StorageClasses(), b.informers.Core().V1().Pods(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "taint-eviction-controller", serviceAccount: "node-controller", workers: 8, build: func(b *builder) (func(context.Context, int), error) {
		c, err := tainteviction.New(b.informers.Core().V1().Pods(), b.informers.Core().V1().Nodes(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "disruption-controller", serviceAccount: "disruption-controller", aliases: []string{"disruption"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		scales, mapper, err := b.scales()
		if err != nil {
			return nil, err
		}
		c, err := disruption.New(b.informers.Policy().V1().PodDisruptionBudgets(), b.informers.Core().V1().Pods(),
			b.informers.Apps().V1().ReplicaSets(), b.informers.Apps().V1().Deployments(), b.client, scales, mapper, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "horizontal-pod-autoscaler-controller", serviceAccount: "horizontal-pod-autoscaler", aliases: []string{podautoscaler.Name}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		scales, mapper, err := b.scales()
		if err != nil {
			return nil, err
		}
		metrics, err := podautoscaler.MetricsClientsForConfig(b.config, mapper)
		if err != nil {
			return nil, err
		}
		c, err := podautoscaler.New(b.informers.Autoscaling().V2().HorizontalPodAutoscalers(), b.informers.Core().V1().Pods(),
			b.client, metrics, scales, mapper, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "resourcequota-controller", serviceAccount: "resourcequota-controller", aliases: []string{"resourcequota"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		md, err := metadata.NewForConfig(b.config)
		if err != nil {
			return nil, err
		}
		c, err := resourcequota.New(b.informers.Core().V1().ResourceQuotas(), b.informers.Core().V1().Pods(), b.client, b.dynamic,
			md, b.restMapper(), resourcequota.DefaultResyncPeriod, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "certificatesigningrequest-signing-controller", serviceAccount: "certificate-controller", aliases: []string{"csrsigning"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		if b.options.ClusterSigningCertFile == "" || b.options.ClusterSigningKeyFile == "" {
			return nil, fmt.Errorf("%w: no --cluster-signing-cert-file and --cluster-signing-key-file", errSkipController)
		}
		ca, err := csrsigning.LoadCA(b.options.ClusterSigningCertFile, b.options.ClusterSigningKeyFile)
		if err != nil {
			return nil, err
		}
		ca.Duration = b.options.ClusterSigningDuration
		c, err := csrsigning.New(b.informers.Certificates().V1().CertificateSigningRequests(), b.client, ca, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "certificatesigningrequest-approving-controller", serviceAccount: "certificate-controller", aliases: []string{"csrapproving"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := csrapproving.New(b.informers.Certificates().V1().CertificateSigningRequests(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	// this and the token cleaner are on by default, where upstream leaves them to kubeadm's
	// --controllers=*,bootstrapsigner,tokencleaner: skiff always hands out join tokens
	// (skiff token create)
	{name: "bootstrap-signer-controller", serviceAccount: "bootstrap-signer", aliases: []string{"bootstrapsigner"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		c, err := bootstrapsigner.New(b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "token-cleaner-controller", serviceAccount: "token-cleaner", aliases: []string{"tokencleaner"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		c, err := tokencleaner.New(b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: "certificatesigningrequest-cleaner-controller", serviceAccount: "certificate-controller", aliases: []string{"csrcleaner"}, workers: 1, build: func(b *builder) (func(context.Context, int), error) {
		return csrcleaner.New(b.informers.Certificates().V1().CertificateSigningRequests(), b.client).Run, nil
	}},
	{name: clusterroleaggregation.Name, serviceAccount: clusterroleaggregation.Name, aliases: []string{"clusterrole-aggregation"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		c, err := clusterroleaggregation.New(b.informers.Rbac().V1().ClusterRoles(), b.client, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{name: admissionpolicystatus.Name, serviceAccount: admissionpolicystatus.Name, aliases: []string{"validatingadmissionpolicy-status"}, workers: 5, build: func(b *builder) (func(context.Context, int), error) {
		checker := admissionpolicystatus.NewTypeChecker(b.client, b.restMapper())
		c, err := admissionpolicystatus.New(b.informers.Admissionregistration().V1().ValidatingAdmissionPolicies(), b.client, checker, b.reporting)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
}

func descriptorByName(name string) *descriptor {
	for i := range descriptors {
		if descriptors[i].name == name || slices.Contains(descriptors[i].aliases, name) {
			return &descriptors[i]
		}
	}
	return nil
}

// ControllerNames lists every controller's name, for --controllers' help.
func ControllerNames() []string {
	var names []string
	for _, d := range descriptors {
		names = append(names, d.name)
	}
	sort.Strings(names)
	return names
}

// enabledControllers resolves --controllers to canonical names in start order: "*" is every
// controller, "name" adds one, "-name" removes one (and wins over "*").
func enabledControllers(spec []string) ([]string, error) {
	all := false
	on, off := map[string]bool{}, map[string]bool{}
	for _, s := range spec {
		s = strings.TrimSpace(s)
		switch {
		case s == "*":
			all = true
		case strings.HasPrefix(s, "-"):
			d := descriptorByName(s[1:])
			if d == nil {
				return nil, fmt.Errorf("%q is not in the list of known controllers: %s", s[1:], strings.Join(ControllerNames(), ", "))
			}
			off[d.name] = true
		case s == "":
		default:
			d := descriptorByName(s)
			if d == nil {
				return nil, fmt.Errorf("%q is not in the list of known controllers: %s", s, strings.Join(ControllerNames(), ", "))
			}
			on[d.name] = true
		}
	}
	var out []string
	for _, d := range descriptors {
		if off[d.name] {
			continue
		}
		if all || on[d.name] {
			out = append(out, d.name)
		}
	}
	return out, nil
}

// builder holds what controllers are built from during one leadership term.
type builder struct {
	ctx       context.Context
	config    *rest.Config
	client    kubernetes.Interface
	dynamic   dynamic.Interface
	informers informers.SharedInformerFactory
	options   Options
	reporting controllers.Reporting
}

// resyncPeriod is how often shared informers replay their caches, as upstream's (12h..24h).
const resyncPeriod = 12 * time.Hour

func newBuilder(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, o Options, r controllers.Reporting) (*builder, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &builder{
		ctx: ctx, config: cfg, client: client, dynamic: dyn,
		// as kube-controller-manager's, the shared caches hold no managedFields (trim.Informer)
		informers: informers.NewSharedInformerFactoryWithOptions(client, resyncPeriod, informers.WithTransform(trim.Informer)),
		options:   o, reporting: r,
	}, nil
}

// asServiceAccount is b with the credentials of the ServiceAccount kube-system/name for the
// controller's own requests; the shared informers stay the manager's.
func (b *builder) asServiceAccount(name string) (*builder, error) {
	cfg, err := serviceAccountConfig(b.ctx, b.config, b.client, name)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	out := *b
	out.config, out.client, out.dynamic = cfg, client, dyn
	return &out, nil
}

// gcInformerSource is metadata-only informers when the API server serves them, dynamic ones
// otherwise.
func (b *builder) gcInformerSource() (garbagecollector.InformerSource, error) {
	md, err := metadata.NewForConfig(b.config)
	if err != nil {
		return nil, err
	}
	if garbagecollector.ServesMetadata(b.ctx, md, 10*time.Second) {
		return garbagecollector.NewMetadataInformerSource(b.informers, metadatainformer.NewSharedInformerFactoryWithOptions(md, resyncPeriod, metadatainformer.WithTransform(trim.ManagedFields))), nil
	}
	return garbagecollector.NewDynamicInformerSource(b.informers, dynamicinformer.NewDynamicSharedInformerFactory(b.dynamic, resyncPeriod)), nil
}

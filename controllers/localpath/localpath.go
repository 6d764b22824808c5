// Package localpath is skiff's built-in local provisioner, as k3s's local-path provisioner:
// a claim of a class whose provisioner is skiff.dev/local-path gets a directory on the node
// the scheduler picked for its first pod (the claim's volume.kubernetes.io/selected-node), and
// a local PersistentVolume with node affinity to that node, pre-bound to the claim. When the
// PV controller releases such a volume under reclaimPolicy Delete, the directory and the
// volume go. A bound claim that asks for more storage gets it (a directory has no size of its
// own), so allowVolumeExpansion is honoured.
//
// One runs beside each kubelet (skiff up starts one for its node): it touches only the
// directories of its own node, under its own directory, and nothing else on the disk.
package localpath

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	storageinformers "k8s.io/client-go/informers/storage/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/persistentvolume"
)

const (
	// Name is the controller's name in logs and metrics.
	Name = "local-path-provisioner"
	// Provisioner is the provisioner name classes give to ask for local directories.
	Provisioner = "skiff.dev/local-path"
	// DefaultClassName is the class skiff up creates, the cluster's default.
	DefaultClassName = "local-path"
)

// DefaultStorageClass is the class skiff up creates: the default one, binding once the first
// pod is scheduled, deleting volumes with their claims, and letting claims grow.
func DefaultStorageClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: DefaultClassName, Annotations: map[string]string{apis.IsDefaultStorageClassAnnotation: "true"}},
		Provisioner:          Provisioner,
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		AllowVolumeExpansion: ptr.To(true),
	}
}

// EnsureDefaultStorageClass creates the default class unless a class of that name exists;
// one an administrator changed or deleted-and-remade is left as it is.
func EnsureDefaultStorageClass(ctx context.Context, client kubernetes.Interface) error {
	_, err := client.StorageV1().StorageClasses().Create(ctx, DefaultStorageClass(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Options say which node this provisioner serves and where its directories live.
type Options struct {
	// NodeName is the node whose claims it provisions: the kubelet's node name, which is also
	// the node's kubernetes.io/hostname label.
	NodeName string
	// Dir holds one directory per volume.
	Dir string
}

// Controller is the local provisioner of one node.
type Controller struct {
	opts     Options
	client   kubernetes.Interface
	volumes  corelisters.PersistentVolumeLister
	claims   corelisters.PersistentVolumeClaimLister
	classes  storagelisters.StorageClassLister
	synced   []cache.InformerSynced
	queue    controllers.Queue
	recorder record.EventRecorder
	metrics  *controllers.Metrics
}

// New makes the provisioner on shared informers of volumes, claims and classes.
func New(pvInformer coreinformers.PersistentVolumeInformer, pvcInformer coreinformers.PersistentVolumeClaimInformer,
	classInformer storageinformers.StorageClassInformer, client kubernetes.Interface, r controllers.Reporting, opts Options) (*Controller, error) {
	if opts.NodeName == "" || opts.Dir == "" {
		return nil, fmt.Errorf("local-path provisioner: node name and directory are required")
	}
	c := &Controller{
		opts: opts, client: client,
		volumes: pvInformer.Lister(), claims: pvcInformer.Lister(), classes: classInformer.Lister(),
		synced:   []cache.InformerSynced{pvInformer.Informer().HasSynced, pvcInformer.Informer().HasSynced, classInformer.Informer().HasSynced},
		queue:    controllers.NewQueue(Name, r),
		recorder: r.EventRecorder(Provisioner + "_" + opts.NodeName),
		metrics:  r.Metrics,
	}
	add := func(prefix string) func(any) {
		return func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				c.queue.Add(prefix + key)
			}
		}
	}
	for informer, prefix := range map[cache.SharedIndexInformer]string{pvInformer.Informer(): "volume/", pvcInformer.Informer(): "claim/"} {
		fn := add(prefix)
		if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: fn, UpdateFunc: func(_, cur any) { fn(cur) }}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run provisions and deletes with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	kind, rest, _ := strings.Cut(key, "/")
	if kind == "volume" {
		pv, err := c.volumes.Get(rest)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return c.syncVolume(ctx, pv)
	}
	ns, name, _ := strings.Cut(rest, "/")
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.syncClaim(ctx, pvc)
}

// syncClaim makes the volume of a claim that asks this node for one.
func (c *Controller) syncClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.DeletionTimestamp != nil || pvc.Annotations[persistentvolume.AnnStorageProvisioner] != Provisioner ||
		pvc.Annotations[persistentvolume.AnnSelectedNode] != c.opts.NodeName {
		return nil
	}
	if pvc.Spec.VolumeName != "" {
		return c.expand(ctx, pvc)
	}
	pvName := "pvc-" + string(pvc.UID)
	if _, err := c.volumes.Get(pvName); err == nil {
		return nil // made already; the PV controller binds it
	}
	class, err := c.classes.Get(apis.PersistentVolumeClaimClass(pvc))
	if err != nil {
		return err
	}
	if class.Provisioner != Provisioner {
		return nil
	}
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		c.recorder.Event(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass \""+class.Name+"\": only the Filesystem volume mode is supported")
		return nil
	}
	c.recorder.Eventf(pvc, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim \"%s/%s\"", pvc.Namespace, pvc.Name)
	dir := filepath.Join(c.opts.Dir, pvName+"_"+pvc.Namespace+"_"+pvc.Name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		return err
	}
	// any container user may write it, as k3s's local-path volumes
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Annotations: map[string]string{persistentvolume.AnnDynamicallyProvisioned: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: ptr.Deref(class.ReclaimPolicy, corev1.PersistentVolumeReclaimDelete),
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{c.opts.NodeName}}},
			}}}},
		},
	}
	if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		return err
	}
	c.recorder.Eventf(pvc, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pvName)
	return nil
}

// expand grows the volume of a bound claim that asks for more, when its class allows it; the
// PV controller then reports the new capacity on the claim.
func (c *Controller) expand(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if err != nil || pv.Annotations[persistentvolume.AnnDynamicallyProvisioned] != Provisioner {
		return nil
	}
	want, have := pvc.Spec.Resources.Requests[corev1.ResourceStorage], pv.Spec.Capacity[corev1.ResourceStorage]
	if want.Cmp(have) <= 0 {
		return nil
	}
	class, err := c.classes.Get(pv.Spec.StorageClassName)
	if err != nil || !ptr.Deref(class.AllowVolumeExpansion, false) {
		return nil
	}
	pv = pv.DeepCopy()
	pv.Spec.Capacity[corev1.ResourceStorage] = want
	if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		return err
	}
	c.recorder.Eventf(pvc, corev1.EventTypeNormal, "VolumeResizeSuccessful", "resize volume %q by resizer %q finished successfully", pv.Name, Provisioner)
	return nil
}

// syncVolume deletes a Released volume of this node that this provisioner made, under
// reclaimPolicy Delete: its directory first, then the volume.
func (c *Controller) syncVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Annotations[persistentvolume.AnnDynamicallyProvisioned] != Provisioner || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.DeletionTimestamp != nil ||
		pv.Spec.Local == nil || !persistentvolume.VolumeNodeAffinityMatches(pv, map[string]string{corev1.LabelHostname: c.opts.NodeName}) {
		return nil
	}
	dir := filepath.Clean(pv.Spec.Local.Path)
	if filepath.Dir(dir) != filepath.Clean(c.opts.Dir) {
		// not one of ours: never remove what this provisioner did not make
		c.recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "path %s is not in %s", dir, c.opts.Dir)
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		c.recorder.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "remove %s: %v", dir, err)
		return err
	}
	err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

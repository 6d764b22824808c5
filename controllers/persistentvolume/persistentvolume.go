// Package persistentvolume is the PersistentVolume controller, as upstream's
// persistentvolume-binder with its pvc-protection and pv-protection controllers: it binds
// claims to volumes (pre-bound by the claim's volumeName or the volume's claimRef, else the
// smallest Available volume of the claim's class that satisfies its access modes, size,
// volume mode and selector), keeps both sides' phases and status, releases a volume whose
// claim is gone and reclaims it as its policy says (Retain keeps it Released; Delete leaves
// the volume to the provisioner that made it), asks a class's provisioner for a volume when
// none fits (annotating the claim, as upstream, for WaitForFirstConsumer claims only once the
// scheduler picked a node), and lifts the protection finalizers once a claim has no pod and a
// volume no claim.
//
// It never creates or deletes storage itself: provisioners (controllers/localpath) do.
package persistentvolume

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	storageinformers "k8s.io/client-go/informers/storage/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/controllers"
)

const (
	// Name is the controller's name in --controllers, logs and metrics.
	Name = "persistentvolume-binder"
	// Component names the controller in the Events it records.
	Component = "persistentvolume-controller"
)

// Annotations upstream's binder writes and reads.
const (
	AnnBindCompleted     = "pv.kubernetes.io/bind-completed"
	AnnBoundByController = "pv.kubernetes.io/bound-by-controller"
	// AnnSelectedNode is the node the scheduler picked for a WaitForFirstConsumer claim.
	AnnSelectedNode = "volume.kubernetes.io/selected-node"
	// AnnStorageProvisioner names the provisioner asked to make a claim's volume.
	AnnStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	annBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	// AnnDynamicallyProvisioned names the provisioner that made a volume.
	AnnDynamicallyProvisioned = "pv.kubernetes.io/provisioned-by"
)

// pvcIndex indexes pods by the claims their volumes use ("namespace/claim").
const pvcIndex = "pvc"

// Controller is the PersistentVolume controller.
type Controller struct {
	client     kubernetes.Interface
	volumes    corelisters.PersistentVolumeLister
	claims     corelisters.PersistentVolumeClaimLister
	classes    storagelisters.StorageClassLister
	podIndexer cache.Indexer
	synced     []cache.InformerSynced
	queue      controllers.Queue
	recorder   record.EventRecorder
	metrics    *controllers.Metrics
}

// New makes the controller on shared informers of volumes, claims, classes and pods. Call it
// before the informers start: it adds an index to the pod informer.
func New(pvInformer coreinformers.PersistentVolumeInformer, pvcInformer coreinformers.PersistentVolumeClaimInformer,
	classInformer storageinformers.StorageClassInformer, podInformer coreinformers.PodInformer,
	client kubernetes.Interface, r controllers.Reporting) (*Controller, error) {
	if err := podInformer.Informer().AddIndexers(cache.Indexers{pvcIndex: podClaimKeys}); err != nil {
		return nil, fmt.Errorf("index pods by claim: %w", err)
	}
	c := &Controller{
		client:     client,
		volumes:    pvInformer.Lister(),
		claims:     pvcInformer.Lister(),
		classes:    classInformer.Lister(),
		podIndexer: podInformer.Informer().GetIndexer(),
		synced: []cache.InformerSynced{pvInformer.Informer().HasSynced, pvcInformer.Informer().HasSynced,
			classInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue:    controllers.NewQueue(Name, r),
		recorder: r.EventRecorder(Component),
		metrics:  r.Metrics,
	}
	onVolume := func(obj any) {
		if pv, ok := objectOf[*corev1.PersistentVolume](obj); ok {
			c.queue.Add(volumeKey(pv.Name))
			// a claim waiting for this volume binds now; a free volume may suit any claim
			// still waiting
			if ref := pv.Spec.ClaimRef; ref != nil {
				c.queue.Add(claimKey(ref.Namespace, ref.Name))
			} else if pv.Status.Phase == corev1.VolumeAvailable {
				c.enqueueUnboundClaims()
			}
		}
	}
	onClaim := func(obj any) {
		if pvc, ok := objectOf[*corev1.PersistentVolumeClaim](obj); ok {
			c.queue.Add(claimKey(pvc.Namespace, pvc.Name))
			if pvc.Spec.VolumeName != "" {
				c.queue.Add(volumeKey(pvc.Spec.VolumeName))
			}
		}
	}
	onPod := func(obj any) {
		if pod, ok := objectOf[*corev1.Pod](obj); ok {
			// a claim being deleted may lose its last pod
			keys, _ := podClaimKeys(pod)
			for _, k := range keys {
				ns, name, _ := strings.Cut(k, "/")
				c.queue.Add(claimKey(ns, name))
			}
		}
	}
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		fn       func(any)
	}{{pvInformer.Informer(), onVolume}, {pvcInformer.Informer(), onClaim}, {podInformer.Informer(), onPod}} {
		fn := h.fn
		if _, err := h.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: fn, UpdateFunc: func(_, cur any) { fn(cur) }, DeleteFunc: fn,
		}); err != nil {
			return nil, err
		}
	}
	// a default class created later, or a class changed, does not change bound claims; new
	// classes are seen by the claims' own resyncs
	return c, nil
}

// enqueueUnboundClaims queues every claim that waits for a volume.
func (c *Controller) enqueueUnboundClaims() {
	claims, err := c.claims.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pvc := range claims {
		if pvc.Spec.VolumeName == "" && pvc.DeletionTimestamp == nil {
			c.queue.Add(claimKey(pvc.Namespace, pvc.Name))
		}
	}
}

// Run syncs volumes and claims with workers goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	controllers.Workers{Name: Name, Queue: c.queue, Sync: c.sync, Metrics: c.metrics, Synced: c.synced}.Run(ctx, workers)
}

func objectOf[T any](obj any) (T, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(T)
	return o, ok
}

// Keys name a claim ("claim/ns/name") or a volume ("volume/name"); one queue holds both, as
// a claim and its volume are synced in turn.
func claimKey(ns, name string) string { return "claim/" + ns + "/" + name }
func volumeKey(name string) string    { return "volume/" + name }

// podClaimKeys are the claims a pod's volumes use, ephemeral ones included.
func podClaimKeys(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			keys = append(keys, pod.Namespace+"/"+v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			keys = append(keys, pod.Namespace+"/"+pod.Name+"-"+v.Name)
		}
	}
	return keys, nil
}

// sync makes the claim or volume a key names match the other side.
func (c *Controller) sync(ctx context.Context, key string) error {
	kind, rest, _ := strings.Cut(key, "/")
	switch kind {
	case "claim":
		ns, name, _ := strings.Cut(rest, "/")
		pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
		if apierrors.IsNotFound(err) {
			return nil // its volume's sync releases the volume
		}
		if err != nil {
			return err
		}
		return c.syncClaim(ctx, pvc.DeepCopy())
	case "volume":
		pv, err := c.volumes.Get(rest)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return c.syncVolume(ctx, pv.DeepCopy())
	}
	return nil
}

// syncClaim binds a claim, or records why it waits.
func (c *Controller) syncClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.DeletionTimestamp != nil {
		return c.releaseClaimProtection(ctx, pvc)
	}
	if pvc.Spec.VolumeName == "" {
		return c.bindUnboundClaim(ctx, pvc)
	}
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		if pvc.Annotations[AnnBindCompleted] == "" {
			// the user named a volume that does not exist yet
			return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
		}
		if pvc.Status.Phase != corev1.ClaimLost {
			c.recorder.Event(pvc, corev1.EventTypeWarning, "ClaimLost", "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
		}
		return c.setClaimPhase(ctx, pvc, corev1.ClaimLost, nil)
	}
	if err != nil {
		return err
	}
	ref := pv.Spec.ClaimRef
	switch {
	case ref == nil:
		// pre-bound by the claim: the volume must still fit it
		if msg := Unsatisfied(pv, pvc); msg != "" {
			c.recorder.Event(pvc, corev1.EventTypeWarning, "VolumeMismatch", msg)
			return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
		}
		return c.bind(ctx, pv.DeepCopy(), pvc)
	case ref.Namespace == pvc.Namespace && ref.Name == pvc.Name && (ref.UID == "" || ref.UID == pvc.UID):
		return c.bind(ctx, pv.DeepCopy(), pvc)
	default:
		if pvc.Status.Phase == corev1.ClaimBound {
			// bound once, and the volume went to another claim
			c.recorder.Event(pvc, corev1.EventTypeWarning, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")
			return c.setClaimPhase(ctx, pvc, corev1.ClaimLost, nil)
		}
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, "FailedBinding", "volume %q already bound to a different claim.", pv.Name)
		return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
	}
}

// bindUnboundClaim finds a volume for a claim without one, or asks its class's provisioner.
func (c *Controller) bindUnboundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	className := apis.PersistentVolumeClaimClass(pvc)
	var class *storagev1.StorageClass
	if className != "" {
		var err error
		if class, err = c.classes.Get(className); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	delayed := class != nil && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
	selectedNode := pvc.Annotations[AnnSelectedNode]
	if delayed && selectedNode == "" {
		// the scheduler picks the node, then the volume is found or made there
		c.recorder.Event(pvc, corev1.EventTypeNormal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
		return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
	}
	pv, err := c.findVolume(pvc, selectedNode)
	if err != nil {
		return err
	}
	if pv != nil {
		return c.bind(ctx, pv.DeepCopy(), pvc)
	}
	switch {
	case class != nil && class.Provisioner != "":
		if pvc.Annotations[AnnStorageProvisioner] != class.Provisioner {
			pvc.Annotations = setAnnotation(pvc.Annotations, AnnStorageProvisioner, class.Provisioner)
			pvc.Annotations[annBetaStorageProvisioner] = class.Provisioner
			updated, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{})
			if err != nil {
				return err
			}
			pvc = updated
		}
		c.recorder.Eventf(pvc, corev1.EventTypeNormal, "ExternalProvisioning",
			"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", class.Provisioner)
	case className == "":
		c.recorder.Event(pvc, corev1.EventTypeNormal, "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
	case class == nil:
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "storageclass.storage.k8s.io %q not found", className)
	}
	return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
}

// findVolume is the volume a claim binds to: one pre-bound to it by claimRef, else the
// smallest Available volume that satisfies it (on node, when the scheduler chose one).
func (c *Controller) findVolume(pvc *corev1.PersistentVolumeClaim, node string) (*corev1.PersistentVolume, error) {
	all, err := c.volumes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var candidates []*corev1.PersistentVolume
	for _, pv := range all {
		if pv.DeletionTimestamp != nil || Unsatisfied(pv, pvc) != "" {
			continue
		}
		if node != "" && !volumeReachesNode(pv, node) {
			continue
		}
		if ref := pv.Spec.ClaimRef; ref != nil {
			if ref.Namespace == pvc.Namespace && ref.Name == pvc.Name && (ref.UID == "" || ref.UID == pvc.UID) {
				return pv, nil
			}
			continue
		}
		if pv.Status.Phase != corev1.VolumeAvailable {
			continue
		}
		candidates = append(candidates, pv)
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	sort.Slice(candidates, func(i, j int) bool {
		a, b := candidates[i].Spec.Capacity[corev1.ResourceStorage], candidates[j].Spec.Capacity[corev1.ResourceStorage]
		if cmp := a.Cmp(b); cmp != 0 {
			return cmp < 0
		}
		return candidates[i].Name < candidates[j].Name
	})
	return candidates[0], nil
}

// Unsatisfied says why pv cannot serve pvc, "" when it can: class, access modes, size,
// volume mode and selector.
func Unsatisfied(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) string {
	if apis.PersistentVolumeClass(pv) != apis.PersistentVolumeClaimClass(pvc) {
		return "Cannot bind to requested volume \"" + pv.Name + "\": storageClassName does not match"
	}
	for _, m := range pvc.Spec.AccessModes {
		if !slices.Contains(pv.Spec.AccessModes, m) {
			return "Cannot bind to requested volume \"" + pv.Name + "\": incompatible accessMode"
		}
	}
	want, have := pvc.Spec.Resources.Requests[corev1.ResourceStorage], pv.Spec.Capacity[corev1.ResourceStorage]
	if have.Cmp(want) < 0 {
		return "Cannot bind to requested volume \"" + pv.Name + "\": requested PV is too small"
	}
	if volumeMode(pv.Spec.VolumeMode) != volumeMode(pvc.Spec.VolumeMode) {
		return "Cannot bind to requested volume \"" + pv.Name + "\": incompatible volumeMode"
	}
	if pvc.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(pvc.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pv.Labels)) {
			return "Cannot bind to requested volume \"" + pv.Name + "\": selector does not match"
		}
	}
	return ""
}

func volumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// volumeReachesNode says whether pv's node affinity lets a pod on node use it (checked
// against the node's hostname label, which is how local volumes name their node).
func volumeReachesNode(pv *corev1.PersistentVolume, node string) bool {
	return VolumeNodeAffinityMatches(pv, labels.Set{corev1.LabelHostname: node})
}

// VolumeNodeAffinityMatches says whether a node with these labels satisfies pv's required node
// affinity (true for a volume without one).
func VolumeNodeAffinityMatches(pv *corev1.PersistentVolume, nodeLabels labels.Set) bool {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil {
		return true
	}
	for _, term := range na.Required.NodeSelectorTerms {
		if termMatches(term, nodeLabels) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, nodeLabels labels.Set) bool {
	if len(term.MatchExpressions) == 0 {
		return false
	}
	for _, req := range term.MatchExpressions {
		v, has := nodeLabels[req.Key]
		switch req.Operator {
		case corev1.NodeSelectorOpIn:
			if !has || !slices.Contains(req.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if has && slices.Contains(req.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpExists:
			if !has {
				return false
			}
		case corev1.NodeSelectorOpDoesNotExist:
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// bind points pv and pvc at each other, volume first as upstream (a crash between the two
// leaves a volume pre-bound to the claim, which the next sync completes), then marks both
// Bound.
func (c *Controller) bind(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) error {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.UID != pvc.UID || ref.Name != pvc.Name || ref.Namespace != pvc.Namespace {
		if ref == nil {
			pv.Annotations = setAnnotation(pv.Annotations, AnnBoundByController, "yes")
		}
		pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
			Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion}
		updated, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		pv = updated
	}
	if err := c.setVolumePhase(ctx, pv, corev1.VolumeBound, ""); err != nil {
		return err
	}
	if pvc.Spec.VolumeName != pv.Name || pvc.Annotations[AnnBindCompleted] != "yes" {
		if pvc.Spec.VolumeName == "" {
			pvc.Annotations = setAnnotation(pvc.Annotations, AnnBoundByController, "yes")
		}
		pvc.Spec.VolumeName = pv.Name
		pvc.Annotations = setAnnotation(pvc.Annotations, AnnBindCompleted, "yes")
		updated, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		pvc = updated
	}
	return c.setClaimPhase(ctx, pvc, corev1.ClaimBound, pv)
}

func setAnnotation(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// setClaimPhase writes a claim's phase, and for a bound one the volume's access modes and
// capacity, as upstream's binder reports them.
func (c *Controller) setClaimPhase(ctx context.Context, pvc *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase, pv *corev1.PersistentVolume) error {
	status := pvc.Status.DeepCopy()
	status.Phase = phase
	if pv != nil {
		status.AccessModes = pv.Spec.AccessModes
		status.Capacity = corev1.ResourceList{corev1.ResourceStorage: pv.Spec.Capacity[corev1.ResourceStorage]}
	} else if phase != corev1.ClaimBound && phase != corev1.ClaimLost {
		status.AccessModes, status.Capacity = nil, nil
	}
	if equalClaimStatus(&pvc.Status, status) {
		return nil
	}
	pvc.Status = *status
	_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{})
	return err
}

func equalClaimStatus(a, b *corev1.PersistentVolumeClaimStatus) bool {
	if a.Phase != b.Phase || !slices.Equal(a.AccessModes, b.AccessModes) || len(a.Capacity) != len(b.Capacity) {
		return false
	}
	for k, v := range a.Capacity {
		if w, ok := b.Capacity[k]; !ok || w.Cmp(v) != 0 {
			return false
		}
	}
	return true
}

// setVolumePhase writes a volume's phase and message when the phase changes. A volume already
// in the phase keeps its message, as upstream's binder leaves it: others (a user, a driver) may
// have written it.
func (c *Controller) setVolumePhase(ctx context.Context, pv *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, message string) error {
	if pv.Status.Phase == phase {
		return nil
	}
	pv.Status.Phase, pv.Status.Message = phase, message
	_, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{})
	return err
}

// syncVolume keeps a volume's phase, releases it when its claim is gone, reclaims it, and
// lifts its protection once no claim is bound to it.
func (c *Controller) syncVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.DeletionTimestamp != nil && pv.Status.Phase != corev1.VolumeBound && slices.Contains(pv.Finalizers, apis.PVProtectionFinalizer) {
		pv.Finalizers = slices.DeleteFunc(pv.Finalizers, func(f string) bool { return f == apis.PVProtectionFinalizer })
		_, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
		return ignoreNotFound(err)
	}
	ref := pv.Spec.ClaimRef
	if ref == nil {
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	if ref.UID == "" {
		// pre-bound to a claim by name: it waits, Available, for that claim
		c.queue.Add(claimKey(ref.Namespace, ref.Name))
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	pvc, err := c.claims.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if pvc != nil && pvc.UID != ref.UID {
		pvc = nil // the claim was deleted and made again: not ours
	}
	if pvc == nil {
		// our informer may lag: the claim is gone only if the server says so
		got, err := c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil && got.UID == ref.UID {
			return nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return c.reclaim(ctx, pv)
	}
	switch pvc.Spec.VolumeName {
	case pv.Name:
		return c.setVolumePhase(ctx, pv, corev1.VolumeBound, "")
	case "":
		// binding half done: the claim's sync completes it
		c.queue.Add(claimKey(pvc.Namespace, pvc.Name))
		return nil
	default:
		// the claim went to another volume; one we bound is set free
		if pv.Annotations[AnnBoundByController] == "yes" {
			pv.Spec.ClaimRef = nil
			delete(pv.Annotations, AnnBoundByController)
			updated, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
			if err != nil {
				return err
			}
			return c.setVolumePhase(ctx, updated, corev1.VolumeAvailable, "")
		}
		return c.setVolumePhase(ctx, pv, corev1.VolumeReleased, "")
	}
}

// reclaim releases a volume whose claim is gone and does what its policy says: Retain keeps
// it Released for an administrator; Delete is the business of the provisioner that made it
// (the volume stays Released until it deletes it); a volume nobody provisioned cannot be
// deleted, nor recycled, by skiff, and fails.
func (c *Controller) reclaim(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Status.Phase == corev1.VolumeFailed {
		return nil
	}
	switch pv.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRetain:
		if pv.Status.Phase != corev1.VolumeReleased {
			c.recorder.Event(pv, corev1.EventTypeNormal, "VolumeReleased", "Volume is released and is available for administrator's manual reclamation")
		}
		return c.setVolumePhase(ctx, pv, corev1.VolumeReleased, "")
	case corev1.PersistentVolumeReclaimDelete:
		if pv.Annotations[AnnDynamicallyProvisioned] != "" {
			return c.setVolumePhase(ctx, pv, corev1.VolumeReleased, "")
		}
		msg := fmt.Sprintf("error getting deleter volume plugin for volume %q: no deletable volume plugin matched", pv.Name)
		c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedDelete", msg)
		return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, msg)
	default:
		msg := "No recycler plugin found for the volume!"
		c.recorder.Event(pv, corev1.EventTypeWarning, "VolumeFailedRecycle", msg)
		return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, msg)
	}
}

// releaseClaimProtection lifts kubernetes.io/pvc-protection from a claim being deleted once no
// pod that has not finished uses it; the informer's word that none does is confirmed with a
// live list, as upstream's pvc-protection controller.
func (c *Controller) releaseClaimProtection(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if !slices.Contains(pvc.Finalizers, apis.PVCProtectionFinalizer) {
		return nil
	}
	cached, err := c.podIndexer.ByIndex(pvcIndex, pvc.Namespace+"/"+pvc.Name)
	if err != nil {
		return err
	}
	for _, obj := range cached {
		if podUses(obj.(*corev1.Pod)) {
			return nil
		}
	}
	live, err := c.client.CoreV1().Pods(pvc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range live.Items {
		keys, _ := podClaimKeys(&live.Items[i])
		if slices.Contains(keys, pvc.Namespace+"/"+pvc.Name) && podUses(&live.Items[i]) {
			return nil
		}
	}
	pvc.Finalizers = slices.DeleteFunc(pvc.Finalizers, func(f string) bool { return f == apis.PVCProtectionFinalizer })
	_, err = c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}

// podUses says whether a pod that names the claim still holds it: it has not finished.
func podUses(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

package node

import (
	corev1 "k8s.io/api/core/v1"
)

// kind is the kind of an object a node may be given access to through its pods.
type kind uint8

const (
	podKind kind = iota
	secretKind
	configMapKind
	pvcKind
	pvKind
	serviceAccountKind
	resourceClaimKind
	volumeAttachmentKind
)

// objectRef names an object of a kind; namespace is empty for PersistentVolumes.
type objectRef struct {
	kind      kind
	namespace string
	name      string
}

type namespacedName struct{ namespace, name string }

// podRecord is what a pod bound to a node gave that node.
type podRecord struct {
	node string
	refs []objectRef
}

// podRefs lists the objects a pod bound to a node lets its kubelet read: the pod itself, its
// service account, image pull secrets, the Secrets and ConfigMaps of env, envFrom and volumes
// (projected sources and volume plugins' secret references too), its claims (ephemeral ones
// are named pod-volume, as the ephemeral volume controller names them) and its resource
// claims, by spec and by status.
func podRefs(pod *corev1.Pod) []objectRef {
	ns := pod.Namespace
	seen := map[objectRef]bool{}
	var refs []objectRef
	add := func(k kind, name string) {
		if name == "" {
			return
		}
		r := objectRef{kind: k, namespace: ns, name: name}
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	add(podKind, pod.Name)
	add(serviceAccountKind, pod.Spec.ServiceAccountName)
	for _, s := range pod.Spec.ImagePullSecrets {
		add(secretKind, s.Name)
	}
	visitEnv := func(env []corev1.EnvVar, envFrom []corev1.EnvFromSource) {
		for _, e := range envFrom {
			if e.SecretRef != nil {
				add(secretKind, e.SecretRef.Name)
			}
			if e.ConfigMapRef != nil {
				add(configMapKind, e.ConfigMapRef.Name)
			}
		}
		for _, e := range env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.SecretKeyRef != nil {
				add(secretKind, e.ValueFrom.SecretKeyRef.Name)
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				add(configMapKind, e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		visitEnv(c.Env, c.EnvFrom)
	}
	for _, c := range pod.Spec.Containers {
		visitEnv(c.Env, c.EnvFrom)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		visitEnv(c.Env, c.EnvFrom)
	}
	for _, v := range pod.Spec.Volumes {
		src := v.VolumeSource
		switch {
		case src.Secret != nil:
			add(secretKind, src.Secret.SecretName)
		case src.ConfigMap != nil:
			add(configMapKind, src.ConfigMap.Name)
		case src.Projected != nil:
			for _, p := range src.Projected.Sources {
				if p.Secret != nil {
					add(secretKind, p.Secret.Name)
				}
				if p.ConfigMap != nil {
					add(configMapKind, p.ConfigMap.Name)
				}
			}
		case src.PersistentVolumeClaim != nil:
			add(pvcKind, src.PersistentVolumeClaim.ClaimName)
		case src.Ephemeral != nil:
			add(pvcKind, pod.Name+"-"+v.Name)
		case src.CSI != nil && src.CSI.NodePublishSecretRef != nil:
			add(secretKind, src.CSI.NodePublishSecretRef.Name)
		case src.AzureFile != nil:
			add(secretKind, src.AzureFile.SecretName)
		case src.CephFS != nil && src.CephFS.SecretRef != nil:
			add(secretKind, src.CephFS.SecretRef.Name)
		case src.Cinder != nil && src.Cinder.SecretRef != nil:
			add(secretKind, src.Cinder.SecretRef.Name)
		case src.FlexVolume != nil && src.FlexVolume.SecretRef != nil:
			add(secretKind, src.FlexVolume.SecretRef.Name)
		case src.ISCSI != nil && src.ISCSI.SecretRef != nil:
			add(secretKind, src.ISCSI.SecretRef.Name)
		case src.RBD != nil && src.RBD.SecretRef != nil:
			add(secretKind, src.RBD.SecretRef.Name)
		case src.ScaleIO != nil && src.ScaleIO.SecretRef != nil:
			add(secretKind, src.ScaleIO.SecretRef.Name)
		case src.StorageOS != nil && src.StorageOS.SecretRef != nil:
			add(secretKind, src.StorageOS.SecretRef.Name)
		}
	}
	for _, c := range pod.Spec.ResourceClaims {
		if c.ResourceClaimName != nil {
			add(resourceClaimKind, *c.ResourceClaimName)
		}
	}
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.ResourceClaimName != nil {
			add(resourceClaimKind, *s.ResourceClaimName)
		}
	}
	return refs
}

package apiserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// The ServiceAccount admission plugin's names, as upstream's
// plugin/pkg/admission/serviceaccount.
const (
	// defaultServiceAccountName is the account of a pod that names none.
	defaultServiceAccountName = "default"
	// serviceAccountVolumePrefix starts the name of the projected token volume; five random
	// characters end it.
	serviceAccountVolumePrefix = "kube-api-access-"
	// serviceAccountMountPath is where every container finds token, ca.crt and namespace.
	serviceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// rootCAConfigMap is the ConfigMap the root CA publisher keeps in every namespace.
	rootCAConfigMap = "kube-root-ca.crt"
)

// admitPodServiceAccount is upstream's ServiceAccount plugin for a new pod: the pod runs as
// spec.serviceAccountName (default "default"), which must exist; unless the pod (or else the
// account) turns automountServiceAccountToken off, every container mounts a projected volume
// with a token of that account, the cluster CA and the namespace; and a pod without image
// pull secrets takes the account's. A mirror pod is never changed, and may reference neither
// service accounts nor secrets.
func (a admission) admitPodServiceAccount(ctx context.Context, ns string, pod *corev1.Pod) error {
	if a.serviceAccounts == nil || !a.enabled("ServiceAccount") {
		return nil
	}
	podsGR := schema.GroupResource{Resource: "pods"}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		if err := validateMirrorPodReferences(pod); err != nil {
			return apierrors.NewForbidden(podsGR, pod.Name, err)
		}
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = defaultServiceAccountName
		// v1 mirrors the name in the deprecated field (apis' pod defaults do so for every
		// pod); a pod stored without it would fail every later update as a spec change
		pod.Spec.DeprecatedServiceAccount = defaultServiceAccountName
	}
	sa, err := a.lookupServiceAccount(ctx, ns, pod.Spec.ServiceAccountName)
	if err != nil {
		return apierrors.NewForbidden(podsGR, pod.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", ns, pod.Spec.ServiceAccountName, err))
	}
	if automountServiceAccountToken(sa, pod) {
		mountServiceAccountToken(pod)
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && len(sa.ImagePullSecrets) > 0 {
		pod.Spec.ImagePullSecrets = make([]corev1.LocalObjectReference, len(sa.ImagePullSecrets))
		for i, s := range sa.ImagePullSecrets {
			pod.Spec.ImagePullSecrets[i].Name = s.Name
		}
	}
	return nil
}

// lookupServiceAccount reads an account from the cache, confirming a miss with a consistent
// read. The default account is made by a controller a moment after its namespace, so a missing
// one is looked for a few more times, as upstream does, before the pod is refused.
func (a admission) lookupServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	obj, err := a.serviceAccounts.Get(ctx, ns, name, &metav1.GetOptions{ResourceVersion: "0"})
	if err == nil {
		return obj.(*corev1.ServiceAccount), nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	attempts := 1
	if name == defaultServiceAccountName {
		attempts = 10
	}
	interval := time.Duration(100+rand.IntN(100)) * time.Millisecond
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(interval):
			}
		}
		obj, err := a.serviceAccounts.Get(ctx, ns, name, &metav1.GetOptions{})
		if err == nil {
			return obj.(*corev1.ServiceAccount), nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccount"}, name)
}

// automountServiceAccountToken: the pod's word wins, then the account's, then yes.
func automountServiceAccountToken(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountServiceAccountToken mounts the token volume read-only in every init container and
// container that has nothing mounted at the token path yet, and adds the volume if any does.
func mountServiceAccountToken(pod *corev1.Pod) {
	mount := corev1.VolumeMount{
		Name:      serviceAccountVolumePrefix + utilrand.String(5),
		ReadOnly:  true,
		MountPath: serviceAccountMountPath,
	}
	needed := false
	for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range containers {
			c := &containers[i]
			mounted := false
			for _, m := range c.VolumeMounts {
				mounted = mounted || m.MountPath == serviceAccountMountPath
			}
			if !mounted {
				c.VolumeMounts = append(c.VolumeMounts, mount)
				needed = true
			}
		}
	}
	if needed {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name:         mount.Name,
			VolumeSource: corev1.VolumeSource{Projected: serviceAccountTokenVolume()},
		})
	}
}

// serviceAccountTokenVolume is upstream's TokenVolumeSource, every default spelled out.
func serviceAccountTokenVolume() *corev1.ProjectedVolumeSource {
	return &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To(corev1.ProjectedVolumeSourceDefaultMode),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Path: "token", ExpirationSeconds: ptr.To[int64](projectedTokenExpirationSeconds),
			}},
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			}},
			{DownwardAPI: &corev1.DownwardAPIProjection{
				Items: []corev1.DownwardAPIVolumeFile{{
					Path:     "namespace",
					FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}},
			}},
		},
	}
}

// validateMirrorPodReferences refuses a mirror pod that references a service account, a
// secret or a service-account token: the kubelet made it from a file, and no API object may
// grant it more.
func validateMirrorPodReferences(pod *corev1.Pod) error {
	if pod.Spec.ServiceAccountName != "" {
		return fmt.Errorf("a mirror pod may not reference service accounts")
	}
	if podReferencesSecrets(pod) {
		return fmt.Errorf("a mirror pod may not reference secrets")
	}
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				return fmt.Errorf("a mirror pod may not use ServiceAccountToken volume projections")
			}
		}
	}
	return nil
}

// podReferencesSecrets reports whether the pod names a secret anywhere upstream's
// VisitPodSecretNames looks: pull secrets, containers' environment, and volumes.
func podReferencesSecrets(pod *corev1.Pod) bool {
	if len(pod.Spec.ImagePullSecrets) > 0 {
		return true
	}
	envUsesSecret := func(env []corev1.EnvVar, from []corev1.EnvFromSource) bool {
		for _, e := range env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				return true
			}
		}
		for _, f := range from {
			if f.SecretRef != nil {
				return true
			}
		}
		return false
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if envUsesSecret(c.Env, c.EnvFrom) {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if envUsesSecret(c.Env, c.EnvFrom) {
			return true
		}
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil,
			v.AzureFile != nil, v.CephFS != nil && v.CephFS.SecretRef != nil,
			v.Cinder != nil && v.Cinder.SecretRef != nil, v.FlexVolume != nil && v.FlexVolume.SecretRef != nil,
			v.RBD != nil && v.RBD.SecretRef != nil, v.ScaleIO != nil && v.ScaleIO.SecretRef != nil,
			v.ISCSI != nil && v.ISCSI.SecretRef != nil, v.StorageOS != nil && v.StorageOS.SecretRef != nil,
			v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
			return true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					return true
				}
			}
		}
	}
	return false
}

package apis

// Volume rules: names, exactly one source per volume, and each source's own fields.

import (
	"fmt"
	"net"
	"path"
	"reflect"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const podFileModeErrorMsg = "must be a number between 0 and 0777 (octal), both inclusive"

// validateVolumes returns the volumes that passed, by name, for mounts to refer to.
func (v *podSpecValidator) validateVolumes(fldPath *field.Path) (map[string]corev1.VolumeSource, field.ErrorList) {
	var allErrs field.ErrorList
	names := sets.New[string]()
	// The claims generic ephemeral volumes will create, which no volume may claim directly.
	created := sets.New[string]()
	if v.meta != nil && v.meta.Name != "" {
		for _, vol := range v.spec.Volumes {
			if vol.Ephemeral != nil {
				created.Insert(v.meta.Name + "-" + vol.Name)
			}
		}
	}
	valid := map[string]corev1.VolumeSource{}
	for i := range v.spec.Volumes {
		vol, idxPath := &v.spec.Volumes[i], fldPath.Index(i)
		namePath := idxPath.Child("name")
		errs := v.validateVolumeSource(&vol.VolumeSource, vol.Name, idxPath)
		if vol.Name == "" {
			errs = append(errs, field.Required(namePath, ""))
		} else {
			errs = append(errs, podDNSLabelErrs(vol.Name, namePath)...)
		}
		if names.Has(vol.Name) {
			errs = append(errs, field.Duplicate(namePath, vol.Name))
		}
		if len(errs) == 0 {
			names.Insert(vol.Name)
			valid[vol.Name] = vol.VolumeSource
		} else {
			allErrs = append(allErrs, errs...)
		}
		if vol.PersistentVolumeClaim != nil && created.Has(vol.PersistentVolumeClaim.ClaimName) {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("persistentVolumeClaim", "claimName"), vol.PersistentVolumeClaim.ClaimName,
				"must not reference a PVC that gets created for an ephemeral volume"))
		}
	}
	return valid, allErrs
}

// validateVolumeSource checks that exactly one source is set, in upstream's order (which
// decides which of two sources gets the "more than 1" error), and that source.
func (v *podSpecValidator) validateVolumeSource(src *corev1.VolumeSource, volName string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	n := 0
	// forbiddenName is the path upstream reports a second source at; it differs from the
	// source's own path for downwardAPI (a typo kept for compatibility).
	one := func(set bool, name, forbiddenName string, check func(*field.Path) field.ErrorList) {
		if !set {
			return
		}
		if n > 0 {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(forbiddenName), "may not specify more than 1 volume type"))
			return
		}
		n++
		allErrs = append(allErrs, check(fldPath.Child(name))...)
	}
	required := func(p *field.Path, fields ...any) field.ErrorList {
		var errs field.ErrorList
		for i := 0; i+1 < len(fields); i += 2 {
			if reflect.ValueOf(fields[i+1]).IsZero() {
				errs = append(errs, field.Required(p.Child(fields[i].(string)), ""))
			}
		}
		return errs
	}

	if src.EmptyDir != nil {
		n++
		if q := src.EmptyDir.SizeLimit; q != nil && q.Sign() < 0 {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
		}
	}
	one(src.HostPath != nil, "hostPath", "hostPath", func(p *field.Path) field.ErrorList {
		return validateHostPathVolume(src.HostPath, p)
	})
	one(src.GitRepo != nil, "gitRepo", "gitRepo", func(p *field.Path) field.ErrorList {
		return append(required(p, "repository", src.GitRepo.Repository), validateLocalDescendingPath(src.GitRepo.Directory, p.Child("directory"))...)
	})
	one(src.GCEPersistentDisk != nil, "persistentDisk", "gcePersistentDisk", func(p *field.Path) field.ErrorList {
		return append(required(p, "pdName", src.GCEPersistentDisk.PDName), validateDiskPartition(src.GCEPersistentDisk.Partition, p)...)
	})
	one(src.AWSElasticBlockStore != nil, "awsElasticBlockStore", "awsElasticBlockStore", func(p *field.Path) field.ErrorList {
		return append(required(p, "volumeID", src.AWSElasticBlockStore.VolumeID), validateDiskPartition(src.AWSElasticBlockStore.Partition, p)...)
	})
	one(src.Secret != nil, "secret", "secret", func(p *field.Path) field.ErrorList {
		errs := required(p, "secretName", src.Secret.SecretName)
		errs = append(errs, validateFileMode(src.Secret.DefaultMode, p.Child("defaultMode"))...)
		for i := range src.Secret.Items {
			errs = append(errs, validateKeyToPath(&src.Secret.Items[i], p.Child("items").Index(i))...)
		}
		return errs
	})
	one(src.NFS != nil, "nfs", "nfs", func(p *field.Path) field.ErrorList {
		errs := required(p, "server", src.NFS.Server, "path", src.NFS.Path)
		if !path.IsAbs(src.NFS.Path) {
			errs = append(errs, field.Invalid(p.Child("path"), src.NFS.Path, "must be an absolute path"))
		}
		return errs
	})
	if src.ISCSI != nil {
		one(true, "iscsi", "iscsi", func(p *field.Path) field.ErrorList { return validateISCSIVolume(src.ISCSI, p) })
		// The initiator name embeds both, and iSCSI caps it at 64 characters.
		if src.ISCSI.InitiatorName != nil && len(volName+":"+src.ISCSI.TargetPortal) > 64 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), volName,
				"Total length of <volume name>:<iscsi.targetPortal> must be under 64 characters if iscsi.initiatorName is specified."))
		}
	}
	one(src.Glusterfs != nil, "glusterfs", "glusterfs", func(p *field.Path) field.ErrorList {
		return required(p, "endpoints", src.Glusterfs.EndpointsName, "path", src.Glusterfs.Path)
	})
	one(src.Flocker != nil, "flocker", "flocker", func(p *field.Path) field.ErrorList {
		var errs field.ErrorList
		f := src.Flocker
		if f.DatasetName == "" && f.DatasetUUID == "" {
			errs = append(errs, field.Required(p, "one of datasetName and datasetUUID is required"))
		}
		if f.DatasetName != "" && f.DatasetUUID != "" {
			errs = append(errs, field.Invalid(p, "resource", "datasetName and datasetUUID can not be specified simultaneously"))
		}
		if strings.Contains(f.DatasetName, "/") {
			errs = append(errs, field.Invalid(p.Child("datasetName"), f.DatasetName, "must not contain '/'"))
		}
		return errs
	})
	one(src.PersistentVolumeClaim != nil, "persistentVolumeClaim", "persistentVolumeClaim", func(p *field.Path) field.ErrorList {
		return required(p, "claimName", src.PersistentVolumeClaim.ClaimName)
	})
	one(src.RBD != nil, "rbd", "rbd", func(p *field.Path) field.ErrorList {
		return required(p, "monitors", src.RBD.CephMonitors, "image", src.RBD.RBDImage)
	})
	one(src.Cinder != nil, "cinder", "cinder", func(p *field.Path) field.ErrorList {
		errs := required(p, "volumeID", src.Cinder.VolumeID)
		if ref := src.Cinder.SecretRef; ref != nil && ref.Name == "" {
			errs = append(errs, field.Required(p.Child("secretRef", "name"), ""))
		}
		return errs
	})
	one(src.CephFS != nil, "cephfs", "cephFS", func(p *field.Path) field.ErrorList {
		return required(p, "monitors", src.CephFS.Monitors)
	})
	one(src.Quobyte != nil, "quobyte", "quobyte", func(p *field.Path) field.ErrorList { return validateQuobyteVolume(src.Quobyte, p) })
	one(src.DownwardAPI != nil, "downwardAPI", "downwarAPI", func(p *field.Path) field.ErrorList {
		errs := validateFileMode(src.DownwardAPI.DefaultMode, p.Child("defaultMode"))
		for i := range src.DownwardAPI.Items {
			// Upstream reports item errors at the source, not at the item.
			errs = append(errs, validateDownwardAPIVolumeFile(&src.DownwardAPI.Items[i], p)...)
		}
		return errs
	})
	one(src.FC != nil, "fc", "fc", func(p *field.Path) field.ErrorList { return validateFCVolume(src.FC, p) })
	one(src.FlexVolume != nil, "flexVolume", "flexVolume", func(p *field.Path) field.ErrorList {
		errs := required(p, "driver", src.FlexVolume.Driver)
		for k := range src.FlexVolume.Options {
			ns, _, _ := strings.Cut(k, "/")
			if normalized := "." + strings.ToLower(ns); strings.HasSuffix(normalized, ".kubernetes.io") || strings.HasSuffix(normalized, ".k8s.io") {
				errs = append(errs, field.Invalid(p.Child("options").Key(k), k, "kubernetes.io and k8s.io namespaces are reserved"))
			}
		}
		return errs
	})
	one(src.ConfigMap != nil, "configMap", "configMap", func(p *field.Path) field.ErrorList {
		errs := required(p, "name", src.ConfigMap.Name)
		errs = append(errs, validateFileMode(src.ConfigMap.DefaultMode, p.Child("defaultMode"))...)
		for i := range src.ConfigMap.Items {
			errs = append(errs, validateKeyToPath(&src.ConfigMap.Items[i], p.Child("items").Index(i))...)
		}
		return errs
	})
	one(src.AzureFile != nil, "azureFile", "azureFile", func(p *field.Path) field.ErrorList {
		return required(p, "secretName", src.AzureFile.SecretName, "shareName", src.AzureFile.ShareName)
	})
	one(src.VsphereVolume != nil, "vsphereVolume", "vsphereVolume", func(p *field.Path) field.ErrorList {
		return required(p, "volumePath", src.VsphereVolume.VolumePath)
	})
	one(src.PhotonPersistentDisk != nil, "photonPersistentDisk", "photonPersistentDisk", func(p *field.Path) field.ErrorList {
		return required(p, "pdID", src.PhotonPersistentDisk.PdID)
	})
	one(src.PortworxVolume != nil, "portworxVolume", "portworxVolume", func(p *field.Path) field.ErrorList {
		return required(p, "volumeID", src.PortworxVolume.VolumeID)
	})
	one(src.AzureDisk != nil, "azureDisk", "azureDisk", func(p *field.Path) field.ErrorList { return validateAzureDiskVolume(src.AzureDisk, p) })
	one(src.StorageOS != nil, "storageos", "storageos", func(p *field.Path) field.ErrorList {
		s := src.StorageOS
		var errs field.ErrorList
		if s.VolumeName == "" {
			errs = append(errs, field.Required(p.Child("volumeName"), ""))
		} else {
			errs = append(errs, podDNSLabelErrs(s.VolumeName, p.Child("volumeName"))...)
		}
		if s.VolumeNamespace != "" {
			errs = append(errs, podDNSLabelErrs(s.VolumeNamespace, p.Child("volumeNamespace"))...)
		}
		if s.SecretRef != nil && s.SecretRef.Name == "" {
			errs = append(errs, field.Required(p.Child("secretRef", "name"), ""))
		}
		return errs
	})
	one(src.Projected != nil, "projected", "projected", func(p *field.Path) field.ErrorList {
		return append(validateFileMode(src.Projected.DefaultMode, p.Child("defaultMode")), validateProjectionSources(src.Projected, p)...)
	})
	one(src.ScaleIO != nil, "scaleIO", "scaleIO", func(p *field.Path) field.ErrorList {
		return required(p, "gateway", src.ScaleIO.Gateway, "system", src.ScaleIO.System, "volumeName", src.ScaleIO.VolumeName)
	})
	one(src.CSI != nil, "csi", "csi", func(p *field.Path) field.ErrorList { return validateCSIVolume(src.CSI, p) })
	one(src.Ephemeral != nil, "ephemeral", "ephemeral", func(p *field.Path) field.ErrorList {
		errs := validateEphemeralVolume(src.Ephemeral, p)
		// The claim is named after the pod and the volume, so that name must be valid too.
		if v.meta != nil && v.meta.Name != "" && volName != "" {
			claim := v.meta.Name + "-" + volName
			for _, msg := range apivalidation.NameIsDNSSubdomain(claim, false) {
				errs = append(errs, field.Invalid(fldPath.Child("name"), volName, fmt.Sprintf("PVC name %q: %v", claim, msg)))
			}
		}
		return errs
	})
	one(src.Image != nil, "image", "image", func(p *field.Path) field.ErrorList {
		var errs field.ErrorList
		// Templates may leave the reference for a controller to fill in.
		if v.isPod && src.Image.Reference == "" {
			errs = append(errs, field.Required(p.Child("reference"), ""))
		}
		return append(errs, validatePullPolicy(src.Image.PullPolicy, p.Child("pullPolicy"))...)
	})
	if n == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a volume type"))
	}
	return allErrs
}

var podHostPathTypes = sets.New(corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
	corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev)

func validateHostPathVolume(h *corev1.HostPathVolumeSource, fldPath *field.Path) field.ErrorList {
	if h.Path == "" {
		return field.ErrorList{field.Required(fldPath.Child("path"), "")}
	}
	allErrs := validatePathNoBacksteps(h.Path, fldPath.Child("path"))
	if h.Type != nil && !podHostPathTypes.Has(*h.Type) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), h.Type, sets.List(podHostPathTypes)))
	}
	return allErrs
}

// validateDiskPartition: upstream's message says 1-255 while it accepts 0 (whole disk).
func validateDiskPartition(partition int32, fldPath *field.Path) field.ErrorList {
	if partition < 0 || partition > 255 {
		return field.ErrorList{field.Invalid(fldPath.Child("partition"), partition, validation.InclusiveRangeError(1, 255))}
	}
	return nil
}

func validateFileMode(mode *int32, fldPath *field.Path) field.ErrorList {
	if mode != nil && (*mode > 0777 || *mode < 0) {
		return field.ErrorList{field.Invalid(fldPath, *mode, podFileModeErrorMsg)}
	}
	return nil
}

func validateKeyToPath(kp *corev1.KeyToPath, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if kp.Key == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("key"), ""))
	}
	if kp.Path == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("path"), ""))
	}
	allErrs = append(allErrs, validateLocalNonReservedPath(kp.Path, fldPath.Child("path"))...)
	return append(allErrs, validateFileMode(kp.Mode, fldPath.Child("mode"))...)
}

func validateDownwardAPIVolumeFile(file *corev1.DownwardAPIVolumeFile, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if file.Path == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("path"), ""))
	}
	allErrs = append(allErrs, validateLocalNonReservedPath(file.Path, fldPath.Child("path"))...)
	switch {
	case file.FieldRef != nil:
		allErrs = append(allErrs, validateObjectFieldSelector(file.FieldRef, podVolumeFieldPaths, fldPath.Child("fieldRef"))...)
		if file.ResourceFieldRef != nil {
			allErrs = append(allErrs, field.Invalid(fldPath, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		}
	case file.ResourceFieldRef != nil:
		allErrs = append(allErrs, validateResourceFieldSelector(file.ResourceFieldRef, true, fldPath.Child("resourceFieldRef"))...)
	default:
		allErrs = append(allErrs, field.Required(fldPath, "one of fieldRef and resourceFieldRef is required"))
	}
	return append(allErrs, validateFileMode(file.Mode, fldPath.Child("mode"))...)
}

// validateProjectionSources checks each source and that no two write the same file.
func validateProjectionSources(projection *corev1.ProjectedVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	paths := sets.New[string]()
	claimPath := func(p, conflictValue string) {
		if paths.Has(p) {
			allErrs = append(allErrs, field.Invalid(fldPath, conflictValue, "conflicting duplicate paths"))
		}
		paths.Insert(p)
	}
	for i, source := range projection.Sources {
		n := 0
		srcPath := fldPath.Child("sources").Index(i)
		if s := source.Secret; s != nil {
			n++
			p := srcPath.Child("secret")
			if s.Name == "" {
				allErrs = append(allErrs, field.Required(p.Child("name"), ""))
			}
			for j := range s.Items {
				allErrs = append(allErrs, validateKeyToPath(&s.Items[j], p.Child("items").Index(j))...)
				if s.Items[j].Path != "" {
					claimPath(s.Items[j].Path, s.Name)
				}
			}
		}
		if s := source.ConfigMap; s != nil {
			n++
			p := srcPath.Child("configMap")
			if s.Name == "" {
				allErrs = append(allErrs, field.Required(p.Child("name"), ""))
			}
			for j := range s.Items {
				allErrs = append(allErrs, validateKeyToPath(&s.Items[j], p.Child("items").Index(j))...)
				if s.Items[j].Path != "" {
					claimPath(s.Items[j].Path, s.Name)
				}
			}
		}
		if s := source.DownwardAPI; s != nil {
			n++
			for j := range s.Items {
				allErrs = append(allErrs, validateDownwardAPIVolumeFile(&s.Items[j], srcPath.Child("downwardAPI"))...)
				if s.Items[j].Path != "" {
					claimPath(s.Items[j].Path, s.Items[j].Path)
				}
			}
		}
		if s := source.ServiceAccountToken; s != nil {
			n++
			p := srcPath.Child("serviceAccountToken")
			var seconds int64
			if s.ExpirationSeconds != nil {
				seconds = *s.ExpirationSeconds
			}
			if seconds < 10*60 {
				allErrs = append(allErrs, field.Invalid(p.Child("expirationSeconds"), seconds, "may not specify a duration less than 10 minutes"))
			}
			if seconds > 1<<32 {
				allErrs = append(allErrs, field.Invalid(p.Child("expirationSeconds"), seconds, "may not specify a duration larger than 2^32 seconds"))
			}
			// Upstream reports the token's path at the projection, not at the source.
			if s.Path == "" {
				allErrs = append(allErrs, field.Required(fldPath.Child("path"), ""))
			} else {
				allErrs = append(allErrs, validateLocalNonReservedPath(s.Path, fldPath.Child("path"))...)
			}
		}
		if s := source.ClusterTrustBundle; s != nil {
			n++
			p := srcPath.Child("clusterTrustBundle")
			switch {
			case s.Name != nil && s.SignerName != nil:
				allErrs = append(allErrs, field.Invalid(p, s, "only one of name and signerName may be used"))
			case s.Name != nil:
				if *s.Name == "" {
					allErrs = append(allErrs, field.Required(p.Child("name"), "must be a valid object name"))
				}
				if s.LabelSelector != nil {
					allErrs = append(allErrs, field.Invalid(p.Child("labelSelector"), s.LabelSelector, "labelSelector must be unset if name is specified"))
				}
			case s.SignerName != nil:
				if *s.SignerName == "" {
					allErrs = append(allErrs, field.Required(p.Child("signerName"), "must be a valid signer name"))
				}
				allErrs = append(allErrs, ValidateSignerName(p.Child("signerName"), *s.SignerName)...)
				allErrs = append(allErrs, metav1validation.ValidateLabelSelector(s.LabelSelector,
					metav1validation.LabelSelectorValidationOptions{}, p.Child("labelSelector"))...)
			default:
				allErrs = append(allErrs, field.Required(p, "either name or signerName must be specified"))
			}
			if s.Path == "" {
				allErrs = append(allErrs, field.Required(p.Child("path"), ""))
			}
			allErrs = append(allErrs, validateVolumeUserField(s.User, p.Child("user"))...)
			allErrs = append(allErrs, validateLocalNonReservedPath(s.Path, p.Child("path"))...)
			claimPath(s.Path, s.Path)
		}
		if s := source.PodCertificate; s != nil {
			n++
			allErrs = append(allErrs, validatePodCertificateProjection(s, srcPath.Child("podCertificate"), claimPath)...)
		}
		if n > 1 {
			allErrs = append(allErrs, field.Forbidden(srcPath, "may not specify more than 1 volume type per source"))
		}
	}
	return allErrs
}

var (
	podIQNRegexp = regexp.MustCompile(`iqn\.\d{4}-\d{2}\.([[:alnum:]-.]+)(:[^,;*&$|\s]+)$`)
	podEUIRegexp = regexp.MustCompile(`^eui.[[:alnum:]]{16}$`)
	podNAARegexp = regexp.MustCompile(`^naa.[[:alnum:]]{32}$`)
)

// iscsiNameErrs checks an iSCSI qualified name in one of its three formats.
func iscsiNameErrs(name string, fldPath *field.Path, prefixMsg string) field.ErrorList {
	switch {
	case !strings.HasPrefix(name, "iqn") && !strings.HasPrefix(name, "eui") && !strings.HasPrefix(name, "naa"):
		return field.ErrorList{field.Invalid(fldPath, name, prefixMsg)}
	case strings.HasPrefix(name, "iqn") && !podIQNRegexp.MatchString(name),
		strings.HasPrefix(name, "eui") && !podEUIRegexp.MatchString(name),
		strings.HasPrefix(name, "naa") && !podNAARegexp.MatchString(name):
		return field.ErrorList{field.Invalid(fldPath, name, "must be valid format")}
	}
	return nil
}

func validateISCSIVolume(s *corev1.ISCSIVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	const prefixMsg = "must be valid format starting with iqn, eui, or naa"
	if s.TargetPortal == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("targetPortal"), ""))
	}
	if s.IQN == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("iqn"), ""))
	} else {
		allErrs = append(allErrs, iscsiNameErrs(s.IQN, fldPath.Child("iqn"), prefixMsg)...)
	}
	if s.Lun < 0 || s.Lun > 255 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("lun"), s.Lun, validation.InclusiveRangeError(0, 255)))
	}
	if (s.DiscoveryCHAPAuth || s.SessionCHAPAuth) && s.SecretRef == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("secretRef"), ""))
	}
	if s.InitiatorName != nil {
		allErrs = append(allErrs, iscsiNameErrs(*s.InitiatorName, fldPath.Child("initiatorname"), prefixMsg)...)
	}
	return allErrs
}

func validateQuobyteVolume(q *corev1.QuobyteVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	const hostPorts = "must be a host:port pair or multiple pairs separated by commas"
	switch {
	case q.Registry == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("registry"), hostPorts))
	case len(q.Tenant) >= 65:
		allErrs = append(allErrs, field.Required(fldPath.Child("tenant"), "must be a UUID and may not exceed a length of 64 characters"))
	default:
		for _, pair := range strings.Split(q.Registry, ",") {
			if _, _, err := net.SplitHostPort(pair); err != nil {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("registry"), q.Registry, hostPorts))
			}
		}
	}
	if q.Volume == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("volume"), ""))
	}
	return allErrs
}

func validateFCVolume(fc *corev1.FCVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(fc.TargetWWNs) < 1 && len(fc.WWIDs) < 1 {
		allErrs = append(allErrs, field.Required(fldPath.Child("targetWWNs"), "must specify either targetWWNs or wwids, but not both"))
	}
	if len(fc.TargetWWNs) != 0 && len(fc.WWIDs) != 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("targetWWNs"), fc.TargetWWNs, "targetWWNs and wwids can not be specified simultaneously"))
	}
	if len(fc.TargetWWNs) != 0 {
		if fc.Lun == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("lun"), "lun is required if targetWWNs is specified"))
		} else if *fc.Lun < 0 || *fc.Lun > 255 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("lun"), fc.Lun, validation.InclusiveRangeError(0, 255)))
		}
	}
	return allErrs
}

func validateAzureDiskVolume(d *corev1.AzureDiskVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	cachingModes := []corev1.AzureDataDiskCachingMode{corev1.AzureDataDiskCachingNone, corev1.AzureDataDiskCachingReadOnly, corev1.AzureDataDiskCachingReadWrite}
	kinds := []corev1.AzureDataDiskKind{corev1.AzureDedicatedBlobDisk, corev1.AzureManagedDisk, corev1.AzureSharedBlobDisk}
	if d.DiskName == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("diskName"), ""))
	}
	if d.DataDiskURI == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("diskURI"), ""))
	}
	if d.CachingMode != nil && !sets.New(cachingModes...).Has(*d.CachingMode) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("cachingMode"), *d.CachingMode, cachingModes))
	}
	if d.Kind != nil && !sets.New(kinds...).Has(*d.Kind) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("kind"), *d.Kind, kinds))
	}
	if d.Kind != nil && *d.Kind == corev1.AzureManagedDisk && !strings.HasPrefix(d.DataDiskURI, "/subscriptions/") {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("diskURI"), d.DataDiskURI, []string{"/subscriptions/{sub-id}/resourcegroups/{group-name}/providers/microsoft.compute/disks/{disk-id}"}))
	}
	if d.Kind != nil && *d.Kind != corev1.AzureManagedDisk && !strings.HasPrefix(d.DataDiskURI, "https://") {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("diskURI"), d.DataDiskURI, []string{"https://{account-name}.blob.core.windows.net/{container-name}/{disk-name}.vhd"}))
	}
	return allErrs
}

func validateCSIVolume(csi *corev1.CSIVolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	driverPath := fldPath.Child("driver")
	if csi.Driver == "" {
		allErrs = append(allErrs, field.Required(driverPath, ""))
	}
	if len(csi.Driver) > 63 {
		allErrs = append(allErrs, field.TooLong(driverPath, "", 63))
	}
	allErrs = append(allErrs, podInvalidAll(driverPath, csi.Driver, validation.IsDNS1123Subdomain(strings.ToLower(csi.Driver)))...)
	if ref := csi.NodePublishSecretRef; ref != nil {
		if ref.Name == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("nodePublishSecretRef", "name"), ""))
		} else {
			// Upstream reports a bad secret name at csi.name.
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("name"), ref.Name, apivalidation.NameIsDNSSubdomain(ref.Name, false))...)
		}
	}
	return allErrs
}

func validateEphemeralVolume(e *corev1.EphemeralVolumeSource, fldPath *field.Path) field.ErrorList {
	tmpl := e.VolumeClaimTemplate
	if tmpl == nil {
		return field.ErrorList{field.Required(fldPath.Child("volumeClaimTemplate"), "")}
	}
	tmplPath := fldPath.Child("volumeClaimTemplate")
	metaPath := tmplPath.Child("metadata")
	allErrs := apivalidation.ValidateAnnotations(tmpl.Annotations, metaPath.Child("annotations"))
	allErrs = append(allErrs, metav1validation.ValidateLabels(tmpl.Labels, metaPath.Child("labels"))...)
	// Only labels and annotations carry over to the claim; anything else would be ignored.
	rv := reflect.ValueOf(tmpl.ObjectMeta)
	for i := 0; i < rv.NumField(); i++ {
		name := rv.Type().Field(i).Name
		if name != "Labels" && name != "Annotations" && !rv.Field(i).IsZero() {
			r, n := utf8.DecodeRuneInString(name)
			allErrs = append(allErrs, field.Forbidden(metaPath.Child(string(unicode.ToLower(r))+name[n:]), "cannot be set"))
		}
	}
	return append(allErrs, validateClaimSpec(&tmpl.Spec, tmplPath.Child("spec"))...)
}

var podAccessModes = sets.New(corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod)

// validateClaimSpec is upstream's PersistentVolumeClaimSpec validation, for ephemeral volumes.
func validateClaimSpec(spec *corev1.PersistentVolumeClaimSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(spec.AccessModes) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("accessModes"), "at least 1 access mode is required"))
	}
	if spec.Selector != nil {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	}
	oncePod, others := false, false
	for _, mode := range spec.AccessModes {
		if !podAccessModes.Has(mode) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("accessModes"), mode, sets.List(podAccessModes)))
		}
		if mode == corev1.ReadWriteOncePod {
			oncePod = true
		} else if podAccessModes.Has(mode) {
			others = true
		}
	}
	if oncePod && others {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("accessModes"), "may not use ReadWriteOncePod with other access modes"))
	}
	storagePath := fldPath.Child("resources").Key(string(corev1.ResourceStorage))
	if storage, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		allErrs = append(allErrs, field.Required(storagePath, ""))
	} else if storage.Cmp(resource.Quantity{}) <= 0 {
		allErrs = append(allErrs, field.Invalid(storagePath, storage.String(), "must be greater than zero"))
	}
	if spec.StorageClassName != nil && *spec.StorageClassName != "" {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("storageClassName"), *spec.StorageClassName, apivalidation.NameIsDNSSubdomain(*spec.StorageClassName, false))...)
	}
	if spec.VolumeMode != nil && *spec.VolumeMode != corev1.PersistentVolumeBlock && *spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("volumeMode"), *spec.VolumeMode, []corev1.PersistentVolumeMode{corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem}))
	}
	if ds := spec.DataSource; ds != nil {
		allErrs = append(allErrs, validateClaimDataSource(ds.Name, ds.Kind, ds.APIGroup, fldPath.Child("dataSource"))...)
	}
	if ref := spec.DataSourceRef; ref != nil {
		allErrs = append(allErrs, validateClaimDataSource(ref.Name, ref.Kind, ref.APIGroup, fldPath.Child("dataSourceRef"))...)
		if ref.Namespace != nil && *ref.Namespace != "" {
			allErrs = append(allErrs, podInvalidAll(fldPath.Child("dataSourceRef", "namespace"), *ref.Namespace, apivalidation.ValidateNamespaceName(*ref.Namespace, false))...)
		}
	}
	if ref := spec.DataSourceRef; ref != nil && ref.Namespace != nil && *ref.Namespace != "" {
		if spec.DataSource != nil {
			allErrs = append(allErrs, field.Invalid(fldPath, fldPath.Child("dataSource"), "may not be specified when dataSourceRef.namespace is specified"))
		}
	} else if ds := spec.DataSource; ds != nil && ref != nil {
		if !reflect.DeepEqual(ds.APIGroup, ref.APIGroup) || ds.Kind != ref.Kind || ds.Name != ref.Name {
			allErrs = append(allErrs, field.Invalid(fldPath, fldPath.Child("dataSource"), "must match dataSourceRef"))
		}
	}
	if c := spec.VolumeAttributesClassName; c != nil && *c != "" {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("volumeAttributesClassName"), *c, apivalidation.NameIsDNSSubdomain(*c, false))...)
	}
	return allErrs
}

func validateClaimDataSource(name, kind string, apiGroup *string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	}
	if kind == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("kind"), ""))
	}
	group := ""
	if apiGroup != nil {
		group = *apiGroup
	}
	if group == "" && kind != "PersistentVolumeClaim" {
		allErrs = append(allErrs, field.Invalid(fldPath, kind, "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
	}
	if group != "" {
		allErrs = append(allErrs, podInvalidAll(fldPath.Child("apiGroup"), group, validation.IsDNS1123Subdomain(group))...)
	}
	return allErrs
}

// validateLocalDescendingPath: a relative path that stays below where it is rooted.
func validateLocalDescendingPath(targetPath string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if path.IsAbs(targetPath) {
		allErrs = append(allErrs, field.Invalid(fldPath, targetPath, "must be a relative path"))
	}
	return append(allErrs, validatePathNoBacksteps(targetPath, fldPath)...)
}

func validatePathNoBacksteps(targetPath string, fldPath *field.Path) field.ErrorList {
	for _, item := range strings.Split(targetPath, "/") {
		if item == ".." {
			return field.ErrorList{field.Invalid(fldPath, targetPath, "must not contain '..'")}
		}
	}
	return nil
}

// validateLocalNonReservedPath also keeps out names starting "..", which the kubelet uses for
// its atomic-writer directories.
func validateLocalNonReservedPath(targetPath string, fldPath *field.Path) field.ErrorList {
	allErrs := validateLocalDescendingPath(targetPath, fldPath)
	if strings.HasPrefix(targetPath, "..") && !strings.HasPrefix(targetPath, "../") {
		allErrs = append(allErrs, field.Invalid(fldPath, targetPath, "must not start with '..'"))
	}
	return allErrs
}

package apis

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// networking.k8s.io/v1: Ingress (with its status), IngressClass and NetworkPolicy, stored
// with upstream's defaulting, validation and columns. Nothing here routes traffic or enforces
// a policy: an ingress controller and a NetworkPolicy agent read these objects.

var networkingV1 = networkingv1.SchemeGroupVersion

const (
	// IngressClassDefaultAnnotation marks the IngressClass a new Ingress naming none gets.
	IngressClassDefaultAnnotation = "ingressclass.kubernetes.io/is-default-class"
	// IngressClassAnnotation is the deprecated way an Ingress names its class.
	IngressClassAnnotation = "kubernetes.io/ingress.class"
)

// IsDefaultIngressClass reports whether an IngressClass is marked default.
func IsDefaultIngressClass(m *metav1.ObjectMeta) bool {
	return m.Annotations[IngressClassDefaultAnnotation] == "true"
}

// IngressStrategy and IngressStatusStrategy are the strategies of ingresses and
// ingresses/status.
var IngressStrategy, IngressStatusStrategy = SpecAndStatus[*networkingv1.Ingress]{
	Validate: ValidateIngress,
	ValidateUpdate: func(ing, old *networkingv1.Ingress) field.ErrorList {
		allErrs := ValidateObjectMetaUpdate(&ing.ObjectMeta, &old.ObjectMeta, metadataPath)
		return append(allErrs, validateIngressSpec(&ing.Spec, field.NewPath("spec"))...)
	},
	ValidateStatusUpdate: func(ing, old *networkingv1.Ingress) field.ErrorList {
		allErrs := ValidateObjectMetaUpdate(&ing.ObjectMeta, &old.ObjectMeta, metadataPath)
		return append(allErrs, validateIngressLoadBalancerStatus(&ing.Status.LoadBalancer, field.NewPath("status", "loadBalancer"))...)
	},
}.Strategies()

// IngressClassStrategy and NetworkPolicyStrategy keep what a client writes (they have no
// status), counting spec changes in generation.
var (
	IngressClassStrategy  Strategy = specGeneration[*networkingv1.IngressClass]{ValidateIngressClass, ValidateIngressClassUpdate}
	NetworkPolicyStrategy Strategy = specGeneration[*networkingv1.NetworkPolicy]{ValidateNetworkPolicy, ValidateNetworkPolicyUpdate}
)

// specGeneration is the strategy of a kind with a spec and no status.
type specGeneration[T runtime.Object] struct {
	validate       func(T) field.ErrorList
	validateUpdate func(obj, old T) field.ErrorList
}

func (specGeneration[T]) PrepareForCreate(_ context.Context, obj runtime.Object) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetGeneration(1)
	}
}
func (s specGeneration[T]) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(obj.(T))
}
func (specGeneration[T]) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if !apiequality.Semantic.DeepEqual(fieldOf(obj, "Spec").Interface(), fieldOf(old, "Spec").Interface()) {
		obj.(metav1.Object).SetGeneration(old.(metav1.Object).GetGeneration() + 1)
	}
}
func (s specGeneration[T]) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return s.validateUpdate(obj.(T), old.(T))
}
func (specGeneration[T]) AllowCreateOnUpdate() bool      { return false }
func (specGeneration[T]) AllowUnconditionalUpdate() bool { return true }

// defaultIngressClass scopes parameters to the cluster unless they say otherwise.
func defaultIngressClass(ic *networkingv1.IngressClass) {
	if p := ic.Spec.Parameters; p != nil && p.Scope == nil {
		p.Scope = ptr.To(networkingv1.IngressClassParametersReferenceScopeCluster)
	}
}

// defaultNetworkPolicy: ports are TCP unless they say otherwise, and a policy naming no
// policy types isolates ingress, and egress too when it has egress rules.
func defaultNetworkPolicy(np *networkingv1.NetworkPolicy) {
	for i := range np.Spec.Ingress {
		defaultNetworkPolicyPorts(np.Spec.Ingress[i].Ports)
	}
	for i := range np.Spec.Egress {
		defaultNetworkPolicyPorts(np.Spec.Egress[i].Ports)
	}
	if len(np.Spec.PolicyTypes) == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) != 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
}

func defaultNetworkPolicyPorts(ports []networkingv1.NetworkPolicyPort) {
	for i := range ports {
		if ports[i].Protocol == nil {
			ports[i].Protocol = ptr.To(corev1.ProtocolTCP)
		}
	}
}

// ValidateNetworkPolicy checks a new NetworkPolicy as upstream does.
func ValidateNetworkPolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	allErrs := ValidateObjectMeta(&np.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateNetworkPolicySpec(&np.Spec, field.NewPath("spec"))...)
}

// ValidateNetworkPolicyUpdate checks np replacing old: the whole spec may change.
func ValidateNetworkPolicyUpdate(np, old *networkingv1.NetworkPolicy) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&np.ObjectMeta, &old.ObjectMeta, metadataPath)
	return append(allErrs, validateNetworkPolicySpec(&np.Spec, field.NewPath("spec"))...)
}

func validateNetworkPolicySpec(spec *networkingv1.NetworkPolicySpec, fldPath *field.Path) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{}
	allErrs := metav1validation.ValidateLabelSelector(&spec.PodSelector, opts, fldPath.Child("podSelector"))
	for i, rule := range spec.Ingress {
		p := fldPath.Child("ingress").Index(i)
		for j := range rule.Ports {
			allErrs = append(allErrs, validateNetworkPolicyPort(&rule.Ports[j], p.Child("ports").Index(j))...)
		}
		for j := range rule.From {
			allErrs = append(allErrs, validateNetworkPolicyPeer(&rule.From[j], p.Child("from").Index(j))...)
		}
	}
	for i, rule := range spec.Egress {
		p := fldPath.Child("egress").Index(i)
		for j := range rule.Ports {
			allErrs = append(allErrs, validateNetworkPolicyPort(&rule.Ports[j], p.Child("ports").Index(j))...)
		}
		for j := range rule.To {
			allErrs = append(allErrs, validateNetworkPolicyPeer(&rule.To[j], p.Child("to").Index(j))...)
		}
	}
	policyTypes := []string{string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress)}
	if len(spec.PolicyTypes) > len(policyTypes) {
		return append(allErrs, field.Invalid(fldPath.Child("policyTypes"), &spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range spec.PolicyTypes {
		if !slices.Contains(policyTypes, string(t)) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("policyTypes").Index(i), t, policyTypes))
		}
	}
	return allErrs
}

func validateNetworkPolicyPort(port *networkingv1.NetworkPolicyPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if p := port.Protocol; p != nil && *p != corev1.ProtocolTCP && *p != corev1.ProtocolUDP && *p != corev1.ProtocolSCTP {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("protocol"), *p,
			[]string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)}))
	}
	switch {
	case port.Port == nil:
		if port.EndPort != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("endPort"), *port.EndPort, "may not be specified when `port` is not specified"))
		}
	case port.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(port.Port.IntVal)) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("port"), port.Port.IntVal, msg))
		}
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("endPort"), port.Port.IntVal, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*port.EndPort)) {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("endPort"), *port.EndPort, msg))
			}
		}
	default:
		if port.EndPort != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
		}
		for _, msg := range validation.IsValidPortName(port.Port.StrVal) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("port"), port.Port.StrVal, msg))
		}
	}
	return allErrs
}

func validateNetworkPolicyPeer(peer *networkingv1.NetworkPolicyPeer, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	opts := metav1validation.LabelSelectorValidationOptions{}
	peers := 0
	if peer.PodSelector != nil {
		peers++
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(peer.PodSelector, opts, fldPath.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		peers++
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, opts, fldPath.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		peers++
		allErrs = append(allErrs, validateIPBlock(peer.IPBlock, fldPath.Child("ipBlock"))...)
	}
	if peers == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a peer"))
	} else if peers > 1 && peer.IPBlock != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath, "may not specify both ipBlock and another peer"))
	}
	return allErrs
}

func validateIPBlock(b *networkingv1.IPBlock, fldPath *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(fldPath.Child("cidr"), "")}
	}
	allErrs := validation.IsValidCIDR(fldPath.Child("cidr"), b.CIDR)
	_, cidr, err := net.ParseCIDR(b.CIDR)
	if err != nil {
		return allErrs
	}
	cidrLen, _ := cidr.Mask.Size()
	for i, except := range b.Except {
		p := fldPath.Child("except").Index(i)
		errs := validation.IsValidCIDR(p, except)
		allErrs = append(allErrs, errs...)
		_, exceptNet, err := net.ParseCIDR(except)
		if err != nil || len(errs) > 0 {
			continue
		}
		exceptLen, _ := exceptNet.Mask.Size()
		if !cidr.Contains(exceptNet.IP) || cidrLen >= exceptLen {
			allErrs = append(allErrs, field.Invalid(p, except, "must be a strict subset of `cidr`"))
		}
	}
	return allErrs
}

// ValidateIngress checks a new Ingress as upstream does.
func ValidateIngress(ing *networkingv1.Ingress) field.ErrorList {
	allErrs := ValidateObjectMeta(&ing.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, metadataPath)
	allErrs = append(allErrs, validateIngressSpec(&ing.Spec, field.NewPath("spec"))...)
	if class, ok := ing.Annotations[IngressClassAnnotation]; ok && ing.Spec.IngressClassName != nil && class != *ing.Spec.IngressClassName {
		allErrs = append(allErrs, field.Invalid(field.NewPath("annotations").Child(IngressClassAnnotation), class,
			"must match `ingressClassName` when both are specified"))
	}
	return allErrs
}

func validateIngressSpec(spec *networkingv1.IngressSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(spec.Rules) == 0 && spec.DefaultBackend == nil {
		allErrs = append(allErrs, field.Invalid(fldPath, spec.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if spec.DefaultBackend != nil {
		allErrs = append(allErrs, validateIngressBackend(spec.DefaultBackend, fldPath.Child("defaultBackend"))...)
	}
	for i, rule := range spec.Rules {
		p := fldPath.Child("rules").Index(i)
		if rule.Host != "" {
			if net.ParseIP(rule.Host) != nil {
				allErrs = append(allErrs, field.Invalid(p.Child("host"), rule.Host, "must be a DNS name, not an IP address"))
			}
			allErrs = append(allErrs, validateHostName(rule.Host, p.Child("host"))...)
		}
		if rule.HTTP != nil {
			allErrs = append(allErrs, validateHTTPIngressRule(rule.HTTP, p.Child("http"))...)
		}
	}
	for i, tls := range spec.TLS {
		p := fldPath.Child("tls").Index(i)
		for _, host := range tls.Hosts {
			allErrs = append(allErrs, validateHostName(host, p.Child("hosts"))...)
		}
		if tls.SecretName != "" {
			for _, msg := range apivalidation.NameIsDNSSubdomain(tls.SecretName, false) {
				allErrs = append(allErrs, field.Invalid(p.Child("secretName"), tls.SecretName, msg))
			}
		}
	}
	if spec.IngressClassName != nil {
		for _, msg := range apivalidation.NameIsDNSSubdomain(*spec.IngressClassName, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("ingressClassName"), *spec.IngressClassName, msg))
		}
	}
	return allErrs
}

// validateHostName checks a rule's or a TLS entry's host: a DNS subdomain, or a wildcard one.
func validateHostName(host string, fldPath *field.Path) field.ErrorList {
	check := validation.IsDNS1123Subdomain
	if strings.Contains(host, "*") {
		check = validation.IsWildcardDNS1123Subdomain
	}
	var allErrs field.ErrorList
	for _, msg := range check(host) {
		allErrs = append(allErrs, field.Invalid(fldPath, host, msg))
	}
	return allErrs
}

var (
	supportedPathTypes    = []string{string(networkingv1.PathTypeExact), string(networkingv1.PathTypeImplementationSpecific), string(networkingv1.PathTypePrefix)}
	invalidPathSequences  = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes   = []string{"/..", "/."}
	supportedParamsScopes = []string{networkingv1.IngressClassParametersReferenceScopeCluster, networkingv1.IngressClassParametersReferenceScopeNamespace}
)

func validateHTTPIngressRule(rule *networkingv1.HTTPIngressRuleValue, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(rule.Paths) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("paths"), ""))
	}
	for i := range rule.Paths {
		path, p := &rule.Paths[i], fldPath.Child("paths").Index(i)
		if path.PathType == nil {
			allErrs = append(allErrs, field.Required(p.Child("pathType"), "pathType must be specified"))
			continue
		}
		switch *path.PathType {
		case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
			if !strings.HasPrefix(path.Path, "/") {
				allErrs = append(allErrs, field.Invalid(p.Child("path"), path.Path, "must be an absolute path"))
			}
			for _, seq := range invalidPathSequences {
				if strings.Contains(path.Path, seq) {
					allErrs = append(allErrs, field.Invalid(p.Child("path"), path.Path, fmt.Sprintf("must not contain '%s'", seq)))
				}
			}
			for _, suffix := range invalidPathSuffixes {
				if strings.HasSuffix(path.Path, suffix) {
					allErrs = append(allErrs, field.Invalid(p.Child("path"), path.Path, fmt.Sprintf("cannot end with '%s'", suffix)))
				}
			}
		case networkingv1.PathTypeImplementationSpecific:
			if path.Path != "" && !strings.HasPrefix(path.Path, "/") {
				allErrs = append(allErrs, field.Invalid(p.Child("path"), path.Path, "must be an absolute path"))
			}
		default:
			allErrs = append(allErrs, field.NotSupported(p.Child("pathType"), *path.PathType, supportedPathTypes))
		}
		allErrs = append(allErrs, validateIngressBackend(&path.Backend, p.Child("backend"))...)
	}
	return allErrs
}

func validateIngressBackend(b *networkingv1.IngressBackend, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case b.Resource != nil && b.Service != nil:
		return field.ErrorList{field.Invalid(fldPath, "", "cannot set both resource and service backends")}
	case b.Resource != nil:
		allErrs = append(allErrs, validateTypedReference(b.Resource.APIGroup, b.Resource.Kind, b.Resource.Name, fldPath.Child("resource"))...)
	case b.Service != nil:
		svc := b.Service
		if svc.Name == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("service", "name"), ""))
		} else {
			for _, msg := range validation.IsDNS1035Label(svc.Name) {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("service", "name"), svc.Name, msg))
			}
		}
		switch hasName, hasNumber := svc.Port.Name != "", svc.Port.Number != 0; {
		case hasName && hasNumber:
			allErrs = append(allErrs, field.Invalid(fldPath, "", "cannot set both port name & port number"))
		case hasName:
			for _, msg := range validation.IsValidPortName(svc.Port.Name) {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("service", "port", "name"), svc.Port.Name, msg))
			}
		case hasNumber:
			for _, msg := range validation.IsValidPortNum(int(svc.Port.Number)) {
				allErrs = append(allErrs, field.Invalid(fldPath.Child("service", "port", "number"), svc.Port.Number, msg))
			}
		default:
			allErrs = append(allErrs, field.Required(fldPath, "port name or number is required"))
		}
	default:
		allErrs = append(allErrs, field.Invalid(fldPath, "", "resource or service backend is required"))
	}
	return allErrs
}

// validateTypedReference checks a reference to an object of another kind (a resource
// backend, an IngressClass's parameters).
func validateTypedReference(apiGroup *string, kind, name string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if apiGroup != nil {
		for _, msg := range validation.IsDNS1123Subdomain(*apiGroup) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("apiGroup"), *apiGroup, msg))
		}
	}
	for _, f := range []struct{ name, value string }{{"kind", kind}, {"name", name}} {
		if f.value == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child(f.name), f.name+" is required"))
			continue
		}
		for _, msg := range validatePathSegmentName(f.value) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child(f.name), f.value, msg))
		}
	}
	return allErrs
}

// validatePathSegmentName is upstream's check that a name can be one segment of a URL path.
func validatePathSegmentName(name string) []string {
	if name == "." || name == ".." {
		return []string{fmt.Sprintf(`may not be '%s'`, name)}
	}
	var msgs []string
	for _, illegal := range []string{"/", "%"} {
		if strings.Contains(name, illegal) {
			msgs = append(msgs, fmt.Sprintf(`may not contain '%s'`, illegal))
		}
	}
	return msgs
}

func validateIngressLoadBalancerStatus(status *networkingv1.IngressLoadBalancerStatus, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, ing := range status.Ingress {
		p := fldPath.Child("ingress").Index(i)
		if ing.IP != "" {
			allErrs = append(allErrs, validation.IsValidIP(p.Child("ip"), ing.IP)...)
		}
		if ing.Hostname != "" {
			for _, msg := range validation.IsDNS1123Subdomain(ing.Hostname) {
				allErrs = append(allErrs, field.Invalid(p.Child("hostname"), ing.Hostname, msg))
			}
			if net.ParseIP(ing.Hostname) != nil {
				allErrs = append(allErrs, field.Invalid(p.Child("hostname"), ing.Hostname, "must be a DNS name, not an IP address"))
			}
		}
	}
	return allErrs
}

// ValidateIngressClass checks a new IngressClass as upstream does.
func ValidateIngressClass(ic *networkingv1.IngressClass) field.ErrorList {
	allErrs := ValidateObjectMeta(&ic.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metadataPath)
	return append(allErrs, validateIngressClassSpec(&ic.Spec, field.NewPath("spec"))...)
}

// ValidateIngressClassUpdate checks ic replacing old: the controller is immutable.
func ValidateIngressClassUpdate(ic, old *networkingv1.IngressClass) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&ic.ObjectMeta, &old.ObjectMeta, metadataPath)
	allErrs = append(allErrs, validateIngressClassSpec(&ic.Spec, field.NewPath("spec"))...)
	if ic.Spec.Controller != old.Spec.Controller {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "controller"), ic.Spec.Controller, errImmutable))
	}
	return allErrs
}

const maxIngressClassControllerLength = 250

func validateIngressClassSpec(spec *networkingv1.IngressClassSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(spec.Controller) > maxIngressClassControllerLength {
		allErrs = append(allErrs, field.TooLong(fldPath.Child("controller"), spec.Controller, maxIngressClassControllerLength))
	}
	allErrs = append(allErrs, validation.IsDomainPrefixedPath(fldPath.Child("controller"), spec.Controller)...)
	params := spec.Parameters
	if params == nil {
		return allErrs
	}
	p := fldPath.Child("parameters")
	allErrs = append(allErrs, validateTypedReference(params.APIGroup, params.Kind, params.Name, p)...)
	if params.Scope == nil {
		return append(allErrs, field.Required(p.Child("scope"), ""))
	}
	switch *params.Scope {
	case networkingv1.IngressClassParametersReferenceScopeNamespace:
		if params.Namespace == nil {
			allErrs = append(allErrs, field.Required(p.Child("namespace"), "`parameters.scope` is set to 'Namespace'"))
		} else {
			for _, msg := range apivalidation.ValidateNamespaceName(*params.Namespace, false) {
				allErrs = append(allErrs, field.Invalid(p.Child("namespace"), *params.Namespace, msg))
			}
		}
	case networkingv1.IngressClassParametersReferenceScopeCluster:
		if params.Namespace != nil {
			allErrs = append(allErrs, field.Forbidden(p.Child("namespace"), "`parameters.scope` is set to 'Cluster'"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(p.Child("scope"), *params.Scope, supportedParamsScopes))
	}
	return allErrs
}

func ingressTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Class", Type: "string", Description: "The name of the IngressClass resource that should be used for this Ingress"},
		{Name: "Hosts", Type: "string", Description: "Hosts that incoming requests are matched against before the ingress rule"},
		{Name: "Address", Type: "string", Description: "Address is a list containing ingress points for the load-balancer"},
		{Name: "Ports", Type: "string", Description: "Ports of TLS configurations that open"},
		ageColumn,
	}, func(ing *networkingv1.Ingress) metav1.TableRow {
		class := "<none>"
		if ing.Spec.IngressClassName != nil {
			class = *ing.Spec.IngressClassName
		}
		ports := "80"
		if len(ing.Spec.TLS) != 0 {
			ports = "80, 443"
		}
		return cells(ing.Name, class, ingressHosts(ing.Spec.Rules), ingressAddress(ing.Status.LoadBalancer), ports,
			translateTimestampSince(ing.CreationTimestamp))
	})
}

// ingressHosts are the hosts of the rules, the first three that have one ("*" for none), and
// how many rules follow once three are listed, as upstream counts them.
func ingressHosts(rules []networkingv1.IngressRule) string {
	const max = 3
	var hosts []string
	more := false
	for _, rule := range rules {
		if len(hosts) == max {
			more = true
		}
		if !more && rule.Host != "" {
			hosts = append(hosts, rule.Host)
		}
	}
	if len(hosts) == 0 {
		return "*"
	}
	if more {
		return fmt.Sprintf("%s + %d more...", strings.Join(hosts, ","), len(rules)-max)
	}
	return strings.Join(hosts, ",")
}

// ingressAddress are the load balancer's addresses, sorted, cut to 16 characters as upstream
// prints them outside -o wide.
func ingressAddress(status networkingv1.IngressLoadBalancerStatus) string {
	var addrs []string
	for _, ing := range status.Ingress {
		a := ing.IP
		if a == "" {
			a = ing.Hostname
		}
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	r := strings.Join(addrs, ",")
	if len(r) > 16 {
		r = r[:13] + "..."
	}
	return r
}

func ingressClassTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Controller", Type: "string", Description: "Controller that is responsible for handling this class"},
		{Name: "Parameters", Type: "string", Description: "A reference to a resource with additional parameters"},
		ageColumn,
	}, func(ic *networkingv1.IngressClass) metav1.TableRow {
		params := "<none>"
		if p := ic.Spec.Parameters; p != nil {
			params = p.Kind
			if p.APIGroup != nil {
				params += "." + *p.APIGroup
			}
			params += "/" + p.Name
		}
		return cells(ic.Name, ic.Spec.Controller, params, translateTimestampSince(ic.CreationTimestamp))
	})
}

func networkPolicyTable() *TablePrinter {
	return Columns([]metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Pod-Selector", Type: "string", Description: networkingv1.NetworkPolicySpec{}.SwaggerDoc()["podSelector"]},
		ageColumn,
	}, func(np *networkingv1.NetworkPolicy) metav1.TableRow {
		return cells(np.Name, metav1.FormatLabelSelector(&np.Spec.PodSelector), translateTimestampSince(np.CreationTimestamp))
	})
}

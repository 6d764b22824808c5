package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func TestIngressGetsTheDefaultClassAndPrintsAsUpstream(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client.NetworkingV1()
	for _, ic := range []*networkingv1.IngressClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "nginx", Annotations: map[string]string{"ingressclass.kubernetes.io/is-default-class": "true"}},
			Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx",
				Parameters: &networkingv1.IngressClassParametersReference{APIGroup: ptr.To("k8s.example.com"), Kind: "IngressParameters", Name: "external-lb"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}},
	} {
		if _, err := c.IngressClasses().Create(ctx, ic, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.IngressClasses().Get(ctx, "nginx", metav1.GetOptions{})
	if err != nil || got.Spec.Parameters.Scope == nil || *got.Spec.Parameters.Scope != "Cluster" || got.Generation != 1 {
		t.Fatalf("parameters scope defaults to Cluster: %+v %v", got, err)
	}
	// the controller is immutable
	got.Spec.Controller = "example.com/else"
	if _, err := c.IngressClasses().Update(ctx, got, metav1.UpdateOptions{}); err == nil ||
		!strings.Contains(err.Error(), `IngressClass.networking.k8s.io "nginx" is invalid: spec.controller: Invalid value: "example.com/else": field is immutable`) {
		t.Fatalf("controller change: %v", err)
	}

	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: "foo.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}},
		}}}},
		TLS: []networkingv1.IngressTLS{{Hosts: []string{"foo.example.com"}, SecretName: "web-tls"}},
	}}
	created, err := c.Ingresses("default").Create(ctx, ing, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.IngressClassName == nil || *created.Spec.IngressClassName != "nginx" {
		t.Fatalf("DefaultIngressClass: class %v", created.Spec.IngressClassName)
	}
	// one naming its class, even by the old annotation, keeps it
	named := ing.DeepCopy()
	named.Name, named.Annotations = "named", map[string]string{"kubernetes.io/ingress.class": "other"}
	if named, err = c.Ingresses("default").Create(ctx, named, metav1.CreateOptions{}); err != nil || named.Spec.IngressClassName != nil {
		t.Fatalf("annotated ingress: %v %v", named.Spec.IngressClassName, err)
	}

	// status only through the subresource
	created.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.10"}}
	if created, err = c.Ingresses("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	created.Status.LoadBalancer.Ingress[0].IP = "not-an-ip"
	if _, err := c.Ingresses("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err == nil ||
		!strings.Contains(err.Error(), `status.loadBalancer.ingress[0].ip: Invalid value: "not-an-ip": must be a valid IP address`) {
		t.Fatalf("bad status ip: %v", err)
	}

	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(5432))}},
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		}},
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}}}},
	}}
	np, err = c.NetworkPolicies("default").Create(ctx, np, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := np.Spec.Ingress[0].Ports[0].Protocol; p == nil || *p != corev1.ProtocolTCP ||
		len(np.Spec.PolicyTypes) != 2 || np.Spec.PolicyTypes[0] != "Ingress" || np.Spec.PolicyTypes[1] != "Egress" {
		t.Fatalf("defaulting: protocol %v, policyTypes %v", p, np.Spec.PolicyTypes)
	}

	kubectl := kubectlRunner(t, kubectlOnPath(t), adminKubeconfig(t, s), nil)
	for _, c := range []struct{ args, want []string }{
		{[]string{"get", "ingress", "web"}, []string{"NAME   CLASS   HOSTS             ADDRESS      PORTS     AGE", "web    nginx   foo.example.com   192.0.2.10   80, 443"}},
		{[]string{"get", "ingressclass"}, []string{"NAME    CONTROLLER             PARAMETERS                                      AGE",
			"nginx   k8s.io/ingress-nginx   IngressParameters.k8s.example.com/external-lb", "other   example.com/other      <none>"}},
		{[]string{"get", "netpol"}, []string{"NAME   POD-SELECTOR   AGE", "db     app=db"}},
	} {
		out := kubectl(c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("kubectl %v:\n%s\nwant %q", c.args, out, w)
			}
		}
	}
}

func TestNetworkingValidationInUpstreamWords(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	c := s.Client.NetworkingV1()
	exact := networkingv1.PathTypeExact
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	for _, tc := range []struct {
		name string
		spec networkingv1.IngressSpec
		want string
	}{
		{"empty", networkingv1.IngressSpec{}, "spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"},
		{"no-path-type", networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", Backend: backend}}}}}}},
			"spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"},
		{"relative", networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "1.2.3.4", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "a//b", PathType: &exact, Backend: backend}}}}}}},
			`spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address`},
		{"both-ports", networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web",
			Port: networkingv1.ServiceBackendPort{Name: "http", Number: 80}}}},
			`spec.defaultBackend: Invalid value: "": cannot set both port name & port number`},
	} {
		_, err := c.Ingresses("default").Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: tc.spec}, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `Ingress.networking.k8s.io "`+tc.name+`" is invalid: `) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		}
	}
	_, err := c.Ingresses("default").Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "relative"}, Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "a//b", PathType: &exact, Backend: backend}}}}}}}}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `[spec.rules[0].http.paths[0].path: Invalid value: "a//b": must be an absolute path, spec.rules[0].http.paths[0].path: Invalid value: "a//b": must not contain '//']`) {
		t.Errorf("relative path: %v", err)
	}

	for _, tc := range []struct {
		name string
		spec networkingv1.NetworkPolicySpec
		want string
	}{
		{"except", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
			IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.0.0.0/8"}}}}}}},
			"spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`"},
		{"no-peer", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{}}}}},
			"spec.egress[0].to[0]: Required value: must specify a peer"},
		{"two-peers", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{
			PodSelector: &metav1.LabelSelector{}, IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}}}},
			"spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer"},
		{"ports", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.Protocol("ICMP")), Port: ptr.To(intstr.FromInt32(90)), EndPort: ptr.To(int32(80))}}}}},
			"spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\", spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`"},
		{"types", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Sideways"}},
			`spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"`},
	} {
		_, err := c.NetworkPolicies("default").Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: tc.spec}, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `NetworkPolicy.networking.k8s.io "`+tc.name+`" is invalid: `) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		}
	}

	_, err = c.IngressClasses().Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: networkingv1.IngressClassSpec{
		Controller: "nginx", Parameters: &networkingv1.IngressClassParametersReference{Kind: "P", Name: "p", Scope: ptr.To("Namespace")}}}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'") ||
		!strings.Contains(err.Error(), `spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")`) {
		t.Errorf("ingress class: %v", err)
	}
}

package apiserver_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

func dualStackRange(c *apiserver.Config) { c.ServiceClusterIPRange = "10.96.0.0/12,fd00:10:96::/112" }

var (
	v4Range = netip.MustParsePrefix("10.96.0.0/12")
	v6Range = netip.MustParsePrefix("fd00:10:96::/112")
)

func withPolicy(svc *corev1.Service, policy corev1.IPFamilyPolicy, families ...corev1.IPFamily) *corev1.Service {
	svc.Spec.IPFamilyPolicy = &policy
	svc.Spec.IPFamilies = families
	return svc
}

// inRanges says whether each cluster IP lies in the range of its family, in that order.
func inRanges(ips []string, ranges ...netip.Prefix) bool {
	if len(ips) != len(ranges) {
		return false
	}
	for i, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ranges[i].Contains(ip) {
			return false
		}
	}
	return true
}

func TestDualStackServicesGetAClusterIPOfEachFamilyTheirPolicyAsksFor(t *testing.T) {
	s := apiservertest.Start(t, dualStackRange)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")

	plain, err := svcs.Create(ctx, testService("plain", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *plain.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || !slices.Equal(plain.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) ||
		!inRanges(plain.Spec.ClusterIPs, v4Range) {
		t.Errorf("a service naming no policy is single-stack of the primary family: %v %v %v", *plain.Spec.IPFamilyPolicy, plain.Spec.IPFamilies, plain.Spec.ClusterIPs)
	}

	prefer, err := svcs.Create(ctx, withPolicy(testService("prefer", ""), corev1.IPFamilyPolicyPreferDualStack), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(prefer.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}) || !inRanges(prefer.Spec.ClusterIPs, v4Range, v6Range) ||
		prefer.Spec.ClusterIP != prefer.Spec.ClusterIPs[0] {
		t.Errorf("PreferDualStack on a dual-stack cluster: %v %v %q", prefer.Spec.IPFamilies, prefer.Spec.ClusterIPs, prefer.Spec.ClusterIP)
	}

	v6first, err := svcs.Create(ctx, withPolicy(testService("v6first", ""), corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v6first.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}) || !inRanges(v6first.Spec.ClusterIPs, v6Range, v4Range) {
		t.Errorf("RequireDualStack with IPv6 first: %v %v", v6first.Spec.IPFamilies, v6first.Spec.ClusterIPs)
	}

	v6only, err := svcs.Create(ctx, withPolicy(testService("v6only", ""), corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !inRanges(v6only.Spec.ClusterIPs, v6Range) {
		t.Errorf("SingleStack IPv6: %v", v6only.Spec.ClusterIPs)
	}

	// each cluster IP is an IPAddress naming its service
	for _, ip := range prefer.Spec.ClusterIPs {
		addr, err := s.Client.NetworkingV1().IPAddresses().Get(ctx, ip, metav1.GetOptions{})
		if err != nil || addr.Spec.ParentRef == nil || addr.Spec.ParentRef.Name != "prefer" {
			t.Errorf("IPAddress %s: %+v %v", ip, addr, err)
		}
	}
	cidr, err := s.Client.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || !slices.Equal(cidr.Spec.CIDRs, []string{"10.96.0.0/12", "fd00:10:96::/112"}) {
		t.Errorf("the default ServiceCIDR of a dual-stack cluster: %+v %v", cidr, err)
	}

	// a requested pair of cluster IPs gives the families
	asked := testService("asked", "")
	asked.Spec.ClusterIP = "fd00:10:96::aa"
	asked.Spec.ClusterIPs = []string{"fd00:10:96::aa", "10.100.0.170"}
	asked.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
	got, err := svcs.Create(ctx, asked, metav1.CreateOptions{})
	if err != nil || !slices.Equal(got.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}) ||
		!slices.Equal(got.Spec.ClusterIPs, asked.Spec.ClusterIPs) {
		t.Fatalf("requested dual-stack cluster IPs: %+v %v", got, err)
	}

	// downgrade: SingleStack releases the secondary IP, upgrade: PreferDualStack takes one again
	got.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	down, err := svcs.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil || !slices.Equal(down.Spec.ClusterIPs, []string{"fd00:10:96::aa"}) || len(down.Spec.IPFamilies) != 1 {
		t.Fatalf("downgrade to SingleStack: %+v %v", down, err)
	}
	if _, err := s.Client.NetworkingV1().IPAddresses().Get(ctx, "10.100.0.170", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the released secondary IP's IPAddress: %v", err)
	}
	down.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
	up, err := svcs.Update(ctx, down, metav1.UpdateOptions{})
	if err != nil || !inRanges(up.Spec.ClusterIPs, v6Range, v4Range) || up.Spec.ClusterIPs[0] != "fd00:10:96::aa" {
		t.Fatalf("upgrade to PreferDualStack: %+v %v", up, err)
	}

	// deleting a dual-stack service frees both of its addresses
	if err := svcs.Delete(ctx, "prefer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range prefer.Spec.ClusterIPs {
		if _, err := s.Client.NetworkingV1().IPAddresses().Get(ctx, ip, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("IPAddress %s after the service's deletion: %v", ip, err)
		}
	}

	headless := testService("headless", "")
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	headless.Spec.Selector = nil
	hl, err := svcs.Create(ctx, headless, metav1.CreateOptions{})
	if err != nil || *hl.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(hl.Spec.IPFamilies) != 2 ||
		!slices.Equal(hl.Spec.ClusterIPs, []string{corev1.ClusterIPNone}) {
		t.Errorf("a headless service without selector is RequireDualStack: %+v %v", hl, err)
	}
}

func TestServiceIPFamilyFieldsAreValidatedWithUpstreamsWords(t *testing.T) {
	single := apiservertest.Start(t)
	dual := apiservertest.Start(t, dualStackRange)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		server *apiservertest.Server
		svc    func(*corev1.Service)
		want   string
	}{{
		name: "require", server: single,
		svc:  func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack) },
		want: `Service "require" is invalid: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services`,
	}, {
		name: "v6", server: single,
		svc:  func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} },
		want: `Service "v6" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster`,
	}, {
		name: "prefer", server: single,
		svc: func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack) },
	}, {
		name: "twofamilies", server: dual,
		svc: func(s *corev1.Service) {
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		},
		want: `Service "twofamilies" is invalid: spec.ipFamilyPolicy: Invalid value: "SingleStack": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified`,
	}, {
		name: "duplicate", server: dual,
		svc: func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv4Protocol}
		},
		want: `Service "duplicate" is invalid: spec.ipFamilies[1]: Duplicate value: "IPv4"`,
	}, {
		name: "badpolicy", server: dual,
		svc:  func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicy("Sometimes")) },
		want: `Service "badpolicy" is invalid: spec.ipFamilyPolicy: Unsupported value: "Sometimes": supported values: "PreferDualStack", "RequireDualStack", "SingleStack"`,
	}, {
		name: "samefamily", server: dual,
		svc: func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.50", []string{"10.96.0.50", "10.96.0.51"}
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		},
		want: `Service "samefamily" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.50","10.96.0.51"]: may specify no more than one IP for each IP family`,
	}, {
		name: "wrongfamily", server: dual,
		svc: func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.52", []string{"10.96.0.52"}
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		},
		want: "Service \"wrongfamily\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.96.0.52\": expected an IPv6 value as indicated by `ipFamilies[0]`",
	}, {
		name: "notfirst", server: dual,
		svc: func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.53", []string{"10.96.0.54"}
		},
		want: "Service \"notfirst\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.54\"]: first value must match `clusterIP`",
	}} {
		svc := testService(tc.name, "")
		tc.svc(svc)
		got, err := tc.server.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
		if tc.want == "" {
			if err != nil || len(got.Spec.ClusterIPs) != 1 || len(got.Spec.IPFamilies) != 1 {
				t.Errorf("%s: PreferDualStack on a single-stack cluster gets one IP: %+v %v", tc.name, got, err)
			}
			continue
		}
		if !apierrors.IsInvalid(err) || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}

	// releasing the secondary IP needs SingleStack
	svcs := dual.Client.CoreV1().Services("default")
	two, err := svcs.Create(ctx, withPolicy(testService("two", ""), corev1.IPFamilyPolicyRequireDualStack), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	two.Spec.ClusterIPs = two.Spec.ClusterIPs[:1]
	_, err = svcs.Update(ctx, two, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.ipFamilyPolicy: Invalid value: "RequireDualStack": must be set to 'SingleStack' when releasing the secondary clusterIP`) {
		t.Errorf("dropping the secondary cluster IP under RequireDualStack: %v", err)
	}
}

package main

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestUpsAddressPlanByDefaultIsTheSingleStackOneItAlwaysHad(t *testing.T) {
	o := &upOptions{}
	o.addFlags(pflag.NewFlagSet("up", pflag.ContinueOnError))
	n, err := o.network()
	if err != nil {
		t.Fatal(err)
	}
	want := upNetwork{clusterCIDR: "10.244.0.0/16", podCIDR: "10.244.0.0/24", serviceCIDR: "10.96.0.0/12", clusterDNS: "10.96.0.10"}
	if n != want {
		t.Errorf("network = %+v, want %+v", n, want)
	}
}

func TestUpsDualStackAddressPlan(t *testing.T) {
	o := &upOptions{clusterCIDR: "10.42.0.0/16,fd42::/56", serviceCIDR: "10.43.0.0/16,fd00:43::/112"}
	n, err := o.network()
	if err != nil {
		t.Fatal(err)
	}
	want := upNetwork{clusterCIDR: "10.42.0.0/16,fd42::/56", podCIDR: "10.42.0.0/24,fd42::/64",
		serviceCIDR: "10.43.0.0/16,fd00:43::/112", clusterDNS: "10.43.0.10", dualStack: true}
	if n != want {
		t.Errorf("network = %+v, want %+v", n, want)
	}
}

func TestUpRefusesAnAddressPlanItCannotServe(t *testing.T) {
	for _, o := range []upOptions{
		{clusterCIDR: "fd42::/56,10.42.0.0/16", serviceCIDR: "10.96.0.0/12"},                   // IPv6 primary
		{clusterCIDR: "fd42::/56", serviceCIDR: "fd00:43::/112"},                               // IPv6 only
		{clusterCIDR: "10.42.0.0/16", serviceCIDR: "10.96.0.0/12,fd00:43::/112"},               // IPv6 Services, no IPv6 pods
		{clusterCIDR: "10.42.0.0/16,10.43.0.0/16", serviceCIDR: "10.96.0.0/12"},                // two of one family
		{clusterCIDR: "10.42.0.0/16", serviceCIDR: "10.96.0.0/12,fd00:43::/112,fd00:44::/112"}, // three
	} {
		if n, err := o.network(); err == nil {
			t.Errorf("--cluster-cidr %s --service-cidr %s: got %+v, want an error", o.clusterCIDR, o.serviceCIDR, n)
		}
	}
}

func TestTheProxysClusterCIDRMayBeDualStack(t *testing.T) {
	v4, v6, err := parseProxyClusterCIDR("10.42.0.0/16,fd42::/56")
	if err != nil || v4.String() != "10.42.0.0/16" || v6.String() != "fd42::/56" {
		t.Errorf("got %v %v %v", v4, v6, err)
	}
	if v4, v6, err := parseProxyClusterCIDR(""); err != nil || v4.IsValid() || v6.IsValid() {
		t.Errorf("empty: got %v %v %v", v4, v6, err)
	}
	for _, bad := range []string{"10.42.0.0/16,10.43.0.0/16", "nonsense", "10.42.0.0/16,fd42::/56,fd43::/56"} {
		if _, _, err := parseProxyClusterCIDR(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
